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
    private readonly int[][] _index;   // per output coordinate: input offsets into the view
    private readonly float[][] _weight; // per output coordinate: ±scale
    private readonly int[] _view;      // per output coordinate: the view it reads

    /// <summary>Builds a projection of <paramref name="dimsPerView"/> outputs per view of <paramref name="layout"/>.</summary>
    public SparseProjection(FeatureLayout layout, int dimsPerView, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimsPerView, 1);
        int v = layout.Views.Count;
        OutputDim = v * dimsPerView;
        _index = new int[OutputDim][];
        _weight = new float[OutputDim][];
        _view = new int[OutputDim];
        var rng = new Random(seed);
        int o = 0;
        for (int view = 0; view < v; view++)
        {
            int d = layout.Views[view].Dim;
            int nnz = Math.Max(1, Math.Min(d, (int)Math.Ceiling(Math.Sqrt(d))));
            float scale = MathF.Sqrt((float)d / (dimsPerView * nnz));
            for (int r = 0; r < dimsPerView; r++, o++)
            {
                _view[o] = view;
                _index[o] = new int[nnz];
                _weight[o] = new float[nnz];
                // Distinct indices by partial Fisher-Yates over a small pool of draws.
                var chosen = new HashSet<int>();
                for (int z = 0; z < nnz; z++)
                {
                    int idx;
                    do idx = rng.Next(d); while (!chosen.Add(idx));
                    _index[o][z] = idx;
                    _weight[o][z] = rng.Next(2) == 0 ? scale : -scale;
                }
            }
        }
    }

    /// <summary>Output width.</summary>
    public int OutputDim { get; }

    /// <summary>Projects patch <paramref name="patch"/> of <paramref name="frame"/> into <paramref name="output"/>.</summary>
    public void Project(FrameFeatures frame, int patch, Span<float> output)
    {
        for (int o = 0; o < OutputDim; o++)
        {
            int view = _view[o];
            int d = frame.Layout.Views[view].Dim;
            ReadOnlySpan<float> x = frame.Views[view].AsSpan(patch * d, d);
            int[] idx = _index[o];
            float[] w = _weight[o];
            float acc = 0;
            for (int z = 0; z < idx.Length; z++) acc += w[z] * x[idx[z]];
            output[o] = acc;
        }
    }
}
