namespace EdgeInspector.Core.Features;

/// <summary>
/// Lowers every view to a fixed width with a seeded very sparse random projection (about √D signed
/// adds per output), then re-normalises each row, so nearest-neighbour search runs on shorter vectors.
/// Distances are preserved approximately (Johnson-Lindenstrauss); what that costs in accuracy is
/// measured, not assumed (README, speed/accuracy curve). Views already at or below the width pass through.
/// </summary>
public sealed class ViewProjector
{
    private readonly int[][][] _index;   // [view][output][nnz]
    private readonly float[][][] _sign;  // [view][output][nnz]

    /// <summary>Builds the projection from <paramref name="source"/> to <paramref name="dims"/> per view.</summary>
    public ViewProjector(FeatureLayout source, int dims, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dims, 1);
        Source = source;
        var views = new List<ViewSpec>();
        _index = new int[source.Views.Count][][];
        _sign = new float[source.Views.Count][][];
        var rng = new Random(seed);
        for (int v = 0; v < source.Views.Count; v++)
        {
            var spec = source.Views[v];
            int outDim = Math.Min(dims, spec.Dim);
            views.Add(spec with { Dim = outDim });
            if (outDim == spec.Dim) continue; // identity
            int nnz = Math.Max(1, (int)Math.Ceiling(Math.Sqrt(spec.Dim)));
            _index[v] = new int[outDim][];
            _sign[v] = new float[outDim][];
            for (int o = 0; o < outDim; o++)
            {
                var chosen = new HashSet<int>();
                _index[v][o] = new int[nnz];
                _sign[v][o] = new float[nnz];
                for (int z = 0; z < nnz; z++)
                {
                    int idx;
                    do idx = rng.Next(spec.Dim); while (!chosen.Add(idx));
                    _index[v][o][z] = idx;
                    _sign[v][o][z] = rng.Next(2) == 0 ? 1f : -1f;
                }
            }
        }
        Target = new FeatureLayout(source.GridHeight, source.GridWidth, views, source.GlobalDim);
    }

    /// <summary>The layout projected from.</summary>
    public FeatureLayout Source { get; }

    /// <summary>The projected layout.</summary>
    public FeatureLayout Target { get; }

    /// <summary>Projects <paramref name="src"/> into <paramref name="dst"/> (which follows <see cref="Target"/>).</summary>
    public void Project(FrameFeatures src, FrameFeatures dst)
    {
        int p = Source.Patches;
        src.Global.CopyTo(dst.Global, 0);
        for (int v = 0; v < _index.Length; v++)
        {
            int d = Source.Views[v].Dim, od = Target.Views[v].Dim;
            if (_index[v] is null)
            {
                src.Views[v].CopyTo(dst.Views[v], 0);
                continue;
            }
            var idx = _index[v];
            var sign = _sign[v];
            for (int q = 0; q < p; q++)
            {
                ReadOnlySpan<float> x = src.Views[v].AsSpan(q * d, d);
                Span<float> y = dst.Views[v].AsSpan(q * od, od);
                for (int o = 0; o < od; o++)
                {
                    int[] ix = idx[o];
                    float[] sg = sign[o];
                    float acc = 0;
                    for (int z = 0; z < ix.Length; z++) acc += sg[z] * x[ix[z]];
                    y[o] = acc;
                }
                ViewBuilder.NormaliseInPlace(y);
            }
        }
    }
}
