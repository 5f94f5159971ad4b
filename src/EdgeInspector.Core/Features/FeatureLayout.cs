namespace EdgeInspector.Core.Features;

/// <summary>
/// One view of a frame's patches: a tapped backbone output at one aggregation degree, with its own
/// feature width. Views are scored separately and fused by the mean (MuSc Eq. 3).
/// </summary>
/// <param name="Tap">Name of the backbone output it comes from.</param>
/// <param name="Degree">Local aggregation degree (1 = none, 3 = 3×3 mean, ...).</param>
/// <param name="Dim">Feature width.</param>
public readonly record struct ViewSpec(string Tap, int Degree, int Dim)
{
    /// <inheritdoc />
    public override string ToString() => $"{Tap}/a{Degree}";
}

/// <summary>The shape every frame's features share: the patch grid, the views and the global feature width.</summary>
public sealed class FeatureLayout
{
    /// <summary>Creates a layout.</summary>
    public FeatureLayout(int gridHeight, int gridWidth, IReadOnlyList<ViewSpec> views, int globalDim)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(gridHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(gridWidth, 1);
        if (views.Count == 0) throw new ArgumentException("A layout needs at least one view.", nameof(views));
        GridHeight = gridHeight;
        GridWidth = gridWidth;
        Views = views;
        GlobalDim = globalDim;
        int total = 0;
        foreach (var v in views) total += v.Dim;
        TotalDim = total;
    }

    /// <summary>Patch rows.</summary>
    public int GridHeight { get; }

    /// <summary>Patch columns.</summary>
    public int GridWidth { get; }

    /// <summary>Patches per frame.</summary>
    public int Patches => GridHeight * GridWidth;

    /// <summary>The views, in fusion order.</summary>
    public IReadOnlyList<ViewSpec> Views { get; }

    /// <summary>Width of the image-level feature (for RsCIN).</summary>
    public int GlobalDim { get; }

    /// <summary>Sum of the view widths.</summary>
    public int TotalDim { get; }
}

/// <summary>One frame's unit-norm patch features per view (each patches × dim, row-major) and its unit global feature.</summary>
public sealed class FrameFeatures
{
    /// <summary>Allocates zeroed features for <paramref name="layout"/>.</summary>
    public FrameFeatures(FeatureLayout layout)
    {
        Layout = layout;
        Views = new float[layout.Views.Count][];
        for (int v = 0; v < Views.Length; v++) Views[v] = new float[layout.Patches * layout.Views[v].Dim];
        Global = new float[layout.GlobalDim];
    }

    /// <summary>The layout these features follow.</summary>
    public FeatureLayout Layout { get; }

    /// <summary>Bytes one frame's features take in <paramref name="layout"/>: every view's patches and the global feature.</summary>
    public static long BytesFor(FeatureLayout layout)
    {
        long floats = layout.GlobalDim;
        foreach (var v in layout.Views) floats += (long)layout.Patches * v.Dim;
        return 4 * floats;
    }

    /// <summary>Per view, patches × dim, each row unit length.</summary>
    public float[][] Views { get; }

    /// <summary>Unit image-level feature.</summary>
    public float[] Global { get; }
}

/// <summary>
/// Reuses <see cref="FrameFeatures"/> buffers: a frame's features are megabytes, and allocating them
/// fresh per frame costs page faults and GC time that show up as feature-extraction latency. It keeps
/// at most <paramref name="maxRetained"/> free frames; one returned beyond that is left to the GC. The
/// warm-up batch and the frames that wait out its build are many but held once: kept for reuse, they
/// would stay in the pool for the life of the process (256 frames are 616 MB at the defaults).
/// </summary>
public sealed class FrameFeaturesPool(FeatureLayout layout, int maxRetained)
{
    private readonly System.Collections.Concurrent.ConcurrentBag<FrameFeatures> _free = [];

    /// <summary>
    /// A pool that keeps what two backbone calls of <paramref name="framesPerCall"/> frames (tiles counted)
    /// make: one call's frames are scored while the next call's are made, so a line in steady state
    /// allocates none.
    /// </summary>
    public static FrameFeaturesPool ForCalls(FeatureLayout layout, int framesPerCall) => new(layout, 2 * Math.Max(1, framesPerCall));

    /// <summary>The layout of the pooled frames.</summary>
    public FeatureLayout Layout => layout;

    /// <summary>Most free frames kept.</summary>
    public int MaxRetained => maxRetained;

    /// <summary>Free frames kept now.</summary>
    public int Free => _free.Count;

    /// <summary>A frame's buffers, reused when one is free. Contents are stale until overwritten.</summary>
    public FrameFeatures Rent() => _free.TryTake(out var f) ? f : new FrameFeatures(layout);

    /// <summary>Hands buffers back; the caller must not touch them afterwards.</summary>
    public void Return(FrameFeatures frame)
    {
        if (frame.Layout != layout) throw new ArgumentException("The frame belongs to another layout.", nameof(frame));
        if (_free.Count < maxRetained) _free.Add(frame);
    }
}
