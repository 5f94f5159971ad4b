using EdgeInspector.Core.Features;

namespace EdgeInspector.Core.Scoring;

/// <summary>
/// Where a <see cref="FrameReservoir"/>'s scoring runs when it does not run as managed code: a copy of the
/// reservoir's kept rows, held where the kernel computes (an accelerator's memory), and the per-frame
/// scoring over it. The reservoir stays the owner of what is kept (ids, order, snapshots); the kernel
/// only mirrors its slots.
/// </summary>
/// <remarks>
/// The contract is <see cref="FrameReservoir"/>'s managed scoring: per view, with the frame's view at its
/// levels (<see cref="Numerics.WindowQuery"/>), each patch's nearest unit distance within every included slot (over the kept rows and, with a window, the slot's frame within the
/// window around the patch's position, 0 as the dot product outside the grid), the mean of the <c>k</c> smallest of those, the mean over the
/// views; the image score is the mean of the top-N patch scores. The managed path is the plain twin the
/// tests hold a kernel to. <see cref="Score"/> may run on several threads at once while no
/// <see cref="Store"/> runs.
/// </remarks>
public interface IReservoirKernel : IDisposable
{
    /// <summary>What the results report as the scoring path ("onnx").</summary>
    string Path { get; }

    /// <summary>
    /// Slot <paramref name="slot"/> now holds <paramref name="rows"/>: per view, <paramref name="count"/>
    /// rows of the view's width at the levels the managed search holds them in (<see cref="Numerics.KeptRows"/>;
    /// at most the reservoir's keep; a kernel pads short frames by repeating a row, which leaves every
    /// maximum as it is). A reservoir that searches a window also gives the frame's
    /// whole views, <paramref name="frame"/> (every patch, row-major); otherwise it is null. The kernel copies
    /// what it needs: the arrays stay the caller's.
    /// </summary>
    void Store(int slot, IReadOnlyList<float[]> rows, int count, IReadOnlyList<float[]>? frame);

    /// <summary>
    /// Scores <paramref name="frame"/> against the slots <paramref name="included"/> marks (one flag per
    /// slot; at least one set), averaging the <paramref name="k"/> smallest distances: writes the fused
    /// patch scores into <paramref name="patches"/> and returns the image score (mean of the
    /// <paramref name="topN"/> largest).
    /// </summary>
    float Score(FrameFeatures frame, ReadOnlySpan<bool> included, int k, int topN, Span<float> patches);
}

/// <summary>
/// Makes the kernel of one reservoir: <paramref name="capacity"/> slots of <paramref name="keep"/> rows per view of
/// <paramref name="layout"/>, and with <paramref name="radius"/> ≥ 0 each slot's whole frame for the window search.
/// </summary>
public delegate IReservoirKernel ReservoirKernelFactory(FeatureLayout layout, int capacity, int keep, int topN, int radius);
