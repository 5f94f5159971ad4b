using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Features;

/// <summary>
/// Lowers every view to a fixed width with a seeded dense Gaussian random projection, then re-normalises
/// each row, so nearest-neighbour search runs on shorter vectors. Distances are preserved approximately
/// (Johnson-Lindenstrauss); what that costs in accuracy is measured, not assumed (docs/evaluation.md). The projection
/// runs as a GEMM through the same register-tiled kernel layout. Views already at or below the width pass through.
/// </summary>
/// <remarks>Thread-safe: no mutable state.</remarks>
public sealed class ViewProjector
{
    private readonly PackedPanels?[] _matrix; // per view: outputs × dim, packed; null = identity

    /// <summary>The seed the evaluation CLI and the line service both use, so that they score in the same space.</summary>
    public const int DefaultSeed = 17;

    /// <summary>Builds the projection from <paramref name="source"/> to <paramref name="dims"/> per view.</summary>
    public ViewProjector(FeatureLayout source, int dims, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dims, 1);
        Source = source;
        Seed = seed;
        _matrix = new PackedPanels?[source.Views.Count];
        var rng = new Random(seed);
        for (int v = 0; v < source.Views.Count; v++)
        {
            var spec = source.Views[v];
            int outDim = Math.Min(dims, spec.Dim);
            if (outDim == spec.Dim) continue; // identity
            var g = new float[outDim * spec.Dim];
            for (int i = 0; i < g.Length; i++) g[i] = (float)Gaussian(rng);
            _matrix[v] = PackedPanels.Pack(g, spec.Dim);
        }
        Target = Projected(source, dims);
    }

    private static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>The layout <paramref name="source"/> is projected to at <paramref name="dims"/> per view (views at or below it pass through).</summary>
    public static FeatureLayout Projected(FeatureLayout source, int dims)
    {
        var views = new List<ViewSpec>(source.Views.Count);
        foreach (var spec in source.Views) views.Add(spec with { Dim = Math.Min(dims, spec.Dim) });
        return new FeatureLayout(source.GridHeight, source.GridWidth, views, source.GlobalDim);
    }

    /// <summary>The seed of the matrices: projectors of one source, width and seed are the same projection.</summary>
    public int Seed { get; }

    /// <summary>The layout projected from.</summary>
    public FeatureLayout Source { get; }

    /// <summary>The projected layout.</summary>
    public FeatureLayout Target { get; }

    /// <summary>
    /// Projects rows (patches × the source width of view <paramref name="view"/>) to the view's target width,
    /// without normalising; false (nothing written) when the view passes through unprojected.
    /// </summary>
    public bool ProjectRows(int view, ReadOnlySpan<float> rows, Span<float> output)
    {
        if (_matrix[view] is not { } g) return false;
        Gemm.Multiply(rows, g, output);
        return true;
    }

    /// <summary>
    /// View <paramref name="view"/>'s matrix, row-major (target width × source width): row o holds the weights
    /// of output o. Null when the view passes through unprojected.
    /// </summary>
    public float[]? Matrix(int view)
    {
        if (_matrix[view] is not { } g) return null;
        var rows = new float[g.Count * g.Dim];
        g.CopyRows(rows);
        return rows;
    }

    /// <summary>Projects <paramref name="src"/> into <paramref name="dst"/> (which follows <see cref="Target"/>).</summary>
    public void Project(FrameFeatures src, FrameFeatures dst)
    {
        int p = Source.Patches;
        src.Global.CopyTo(dst.Global, 0);
        for (int v = 0; v < _matrix.Length; v++)
        {
            if (_matrix[v] is not { } g)
            {
                src.Views[v].CopyTo(dst.Views[v], 0);
                continue;
            }
            int od = Target.Views[v].Dim;
            Gemm.Multiply(src.Views[v], g, dst.Views[v]);
            for (int q = 0; q < p; q++) ViewBuilder.NormaliseInPlace(dst.Views[v].AsSpan(q * od, od));
        }
    }
}
