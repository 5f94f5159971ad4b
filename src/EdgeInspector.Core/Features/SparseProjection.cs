using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace EdgeInspector.Core.Features;

/// <summary>
/// A fixed, seeded, very sparse random projection (Li et al.; anomalib's coreset sampler uses the same
/// family): each output coordinate sums about √D input coordinates with random signs, scaled so that
/// squared lengths are preserved in expectation. Each view gets its own block of outputs, so a projected
/// patch approximates the concatenation of its views and ‖Πx−Πy‖² ≈ Σ_v ‖x_v−y_v‖².
/// Costs about √D adds per output instead of D multiply-adds for a dense projection.
/// </summary>
public sealed class SparseProjection
{
    private readonly int[] _dims;      // per view: its width
    private readonly int[] _nnz;       // per view: inputs each of its outputs sums
    private readonly int _dimsPerView;
    // Per view, term-major (term z, then output r of the view's block): output r sums weight[z·dpv + r] ·
    // x[index[z·dpv + r]] over z, in order. Term-major so that eight outputs' terms z are one vector load.
    private readonly int[][] _termIndex;
    private readonly float[][] _termWeight;

    /// <summary>Builds a projection of <paramref name="dimsPerView"/> outputs per view of <paramref name="layout"/>.</summary>
    public SparseProjection(FeatureLayout layout, int dimsPerView, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimsPerView, 1);
        int v = layout.Views.Count;
        OutputDim = v * dimsPerView;
        _dims = new int[v];
        _nnz = new int[v];
        _termIndex = new int[v][];
        _termWeight = new float[v][];
        _dimsPerView = dimsPerView;
        var rng = new Random(seed);
        for (int view = 0; view < v; view++)
        {
            int d = layout.Views[view].Dim;
            int nnz = Math.Max(1, Math.Min(d, (int)Math.Ceiling(Math.Sqrt(d))));
            float scale = MathF.Sqrt((float)d / (dimsPerView * nnz));
            _dims[view] = d;
            _nnz[view] = nnz;
            _termIndex[view] = new int[nnz * dimsPerView];
            _termWeight[view] = new float[nnz * dimsPerView];
            for (int r = 0; r < dimsPerView; r++)
            {
                // Distinct indices by partial Fisher-Yates over a small pool of draws.
                var chosen = new HashSet<int>();
                for (int z = 0; z < nnz; z++)
                {
                    int idx;
                    do idx = rng.Next(d); while (!chosen.Add(idx));
                    _termIndex[view][z * dimsPerView + r] = idx;
                    _termWeight[view][z * dimsPerView + r] = rng.Next(2) == 0 ? scale : -scale;
                }
            }
        }
    }

    /// <summary>Output width.</summary>
    public int OutputDim { get; }

    /// <summary>
    /// Projects patch <paramref name="patch"/> of <paramref name="frame"/> into <paramref name="output"/>: the
    /// plain twin of <see cref="ProjectAll"/>, one output and one term at a time.
    /// </summary>
    public void Project(FrameFeatures frame, int patch, Span<float> output)
    {
        for (int v = 0; v < _dims.Length; v++)
        {
            int d = frame.Layout.Views[v].Dim;
            ProjectOutputs(frame.Views[v].AsSpan(patch * d, d), v, 0, output.Slice(v * _dimsPerView, _dimsPerView));
        }
    }

    /// <summary>
    /// Projects every patch of <paramref name="frame"/> into <paramref name="output"/> (patches × <see cref="OutputDim"/>,
    /// row-major): the same values as <see cref="Project"/> patch by patch, to the bit (<see cref="ProjectView"/>).
    /// </summary>
    public void ProjectAll(FrameFeatures frame, Span<float> output)
    {
        for (int v = 0; v < _dims.Length; v++) ProjectView(frame, v, output);
    }

    /// <summary>
    /// Writes view <paramref name="view"/>'s block of outputs for every patch of <paramref name="frame"/> into
    /// <paramref name="output"/> (patches × <see cref="OutputDim"/>, row-major; the other views' columns are left
    /// as they are, so the views can be projected on several threads). Each output's terms are summed in the
    /// order <see cref="Project"/> sums them, a product then a sum (no fused multiply-add), so the values are
    /// the same to the bit and a reservoir frame's selection does not depend on the path. With AVX2, eight
    /// outputs at a time, their inputs gathered from the patch's row.
    /// </summary>
    public void ProjectView(FrameFeatures frame, int view, Span<float> output)
    {
        int p = frame.Layout.Patches;
        if (frame.Views.Length != _dims.Length) throw new ArgumentException($"The frame has {frame.Views.Length} views; the projection was made for {_dims.Length}.", nameof(frame));
        ArgumentOutOfRangeException.ThrowIfNegative(view);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(view, _dims.Length);
        if (frame.Layout.Views[view].Dim != _dims[view]) throw new ArgumentException($"View {view} is {frame.Layout.Views[view].Dim} wide; the projection was made for {_dims[view]}.", nameof(frame));
        if (output.Length < p * OutputDim) throw new ArgumentException($"{output.Length} floats for {p} patches of {OutputDim}.", nameof(output));
        int d = _dims[view], done = Avx2.IsSupported ? ProjectBlocksAvx2(frame.Views[view], view, p, output) : 0;
        if (done == _dimsPerView) return;
        for (int q = 0; q < p; q++)
            ProjectOutputs(frame.Views[view].AsSpan(q * d, d), view, done, output.Slice(q * OutputDim + view * _dimsPerView, _dimsPerView));
    }

    /// <summary>Outputs <paramref name="from"/> on of view <paramref name="v"/>'s block for one patch's row <paramref name="x"/>, one term at a time (the plain order).</summary>
    private void ProjectOutputs(ReadOnlySpan<float> x, int v, int from, Span<float> block)
    {
        int nnz = _nnz[v], dpv = _dimsPerView;
        int[] index = _termIndex[v];
        float[] weight = _termWeight[v];
        for (int r = from; r < dpv; r++)
        {
            float acc = 0;
            for (int z = 0; z < nnz; z++) acc += weight[z * dpv + r] * x[index[z * dpv + r]];
            block[r] = acc;
        }
    }

    /// <summary>The view's whole blocks of eight outputs; returns how many outputs it wrote per patch.</summary>
    private unsafe int ProjectBlocksAvx2(float[] view, int v, int patches, Span<float> output)
    {
        int d = _dims[v], nnz = _nnz[v], dpv = _dimsPerView, first = v * dpv;
        int blocks = dpv / Vector256<float>.Count * Vector256<float>.Count;
        fixed (float* x0 = view)
        fixed (float* out0 = output)
        fixed (int* index = _termIndex[v])
        fixed (float* weight = _termWeight[v])
        {
            for (int q = 0; q < patches; q++)
            {
                float* x = x0 + (long)q * d, o = out0 + (long)q * OutputDim + first;
                for (int r = 0; r < blocks; r += Vector256<float>.Count)
                {
                    var acc = Vector256<float>.Zero;
                    for (int z = 0; z < nnz; z++)
                    {
                        var at = Avx.LoadVector256(index + z * dpv + r);
                        var w = Avx.LoadVector256(weight + z * dpv + r);
                        acc = Avx.Add(acc, Avx.Multiply(w, Avx2.GatherVector256(x, at, 4)));
                    }
                    Avx.Store(o + r, acc);
                }
            }
        }
        return blocks;
    }
}
