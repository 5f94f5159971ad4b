using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>MuSc reference settings (spec §3, defaults from the official code).</summary>
public sealed record MuScOptions
{
    /// <summary>Interval average over the lowest fraction of per-image minima (musc.py L211).</summary>
    public double IntervalFraction { get; init; } = 0.3;

    /// <summary>RsCIN window sizes; {1,2,3} for MVTec and by default (musc.py L242-247).</summary>
    public int[] RsCinWindows { get; init; } = [1, 2, 3];

    /// <summary>N of the top-N image score reported beside MuSc's max, for a like-for-like comparison with FSLC.</summary>
    public int TopN { get; init; } = 10;
}

/// <summary>MuSc results for a batch.</summary>
/// <param name="Patches">Per frame, fused patch scores.</param>
/// <param name="ImageMax">Per frame, MuSc's raw image score: the max of the map.</param>
/// <param name="ImageTopN">Per frame, the mean of the top-N patch scores.</param>
/// <param name="ImageRsCin">Per frame, the RsCIN re-scored image score (batch-relative, in [0,1]).</param>
public sealed record MuScResult(float[][] Patches, float[] ImageMax, float[] ImageTopN, float[] ImageRsCin);

/// <summary>
/// The MuSc reference scorer (spec §3): every patch is scored against every other frame of the batch
/// (Eq. 1, nearest distance per reference frame), the lowest 30% of those are averaged (Eq. 2), views
/// are averaged (Eq. 3), and image scores are re-scored with RsCIN. This is the accuracy and speed yardstick.
/// </summary>
/// <remarks>
/// Each unordered pair (i, j) is multiplied once: the kernel's row maxima give α(i,·|j) and its column
/// maxima α(j,·|i), halving MuSc's cost without changing any score. Not thread-safe: it reuses its
/// packed references and distance table from batch to batch.
/// </remarks>
public sealed class MuScScorer(MuScOptions options)
{
    private PackedPanels[] _packs = [];
    private float[] _alpha = [];

    /// <summary>Scores a batch of at least two frames. <paramref name="progress"/> receives finished pair counts.</summary>
    public MuScResult Score(IReadOnlyList<FrameFeatures> batch, IProgress<int>? progress = null)
    {
        int b = batch.Count;
        if (b < 2) throw new ArgumentException("MuSc needs at least two frames in a batch.", nameof(batch));
        var layout = batch[0].Layout;
        int p = layout.Patches, views = layout.Views.Count;
        int k = Stats.IntervalCount(b - 1, options.IntervalFraction);

        var patches = new float[b][];
        for (int i = 0; i < b; i++) patches[i] = new float[p];
        // alpha[(i*b + j)*p + q]: nearest distance of patch q of frame i within frame j, for one view.
        if (_alpha.Length < b * b * p) _alpha = new float[b * b * p];
        var alpha = _alpha;
        if (_packs.Length < b) Array.Resize(ref _packs, b);
        var packs = _packs;
        for (int i = 0; i < b; i++) packs[i] ??= new PackedPanels();
        var pairs = new List<(int I, int J)>(b * (b - 1) / 2);
        for (int i = 0; i < b; i++) for (int j = i + 1; j < b; j++) pairs.Add((i, j));
        int done = 0;

        for (int v = 0; v < views; v++)
        {
            int dim = layout.Views[v].Dim;
            Parallel.For(0, b, i => packs[i].Repack(batch[i].Views[v], dim, [p]));
            Parallel.ForEach(pairs, () => (Row: new float[p], Col: new float[p]), (pair, _, buf) =>
            {
                buf.Row.AsSpan().Fill(float.NegativeInfinity);
                buf.Col.AsSpan().Fill(float.NegativeInfinity);
                MaxDot.Accumulate(batch[pair.I].Views[v], packs[pair.J], buf.Row, buf.Col);
                Span<float> ij = alpha.AsSpan((pair.I * b + pair.J) * p, p);
                Span<float> ji = alpha.AsSpan((pair.J * b + pair.I) * p, p);
                for (int q = 0; q < p; q++)
                {
                    ij[q] = MaxDot.UnitDistance(buf.Row[q]);
                    ji[q] = MaxDot.UnitDistance(buf.Col[q]);
                }
                int n = Interlocked.Increment(ref done);
                if (progress is not null && n % 64 == 0) progress.Report(n);
                return buf;
            }, _ => { });

            Parallel.For(0, b, () => new float[b - 1], (i, _, refs) =>
            {
                for (int q = 0; q < p; q++)
                {
                    int c = 0;
                    for (int j = 0; j < b; j++) if (j != i) refs[c++] = alpha[(i * b + j) * p + q];
                    patches[i][q] += Stats.MeanOfSmallest(refs, k) / views;
                }
                return refs;
            }, _ => { });
        }
        progress?.Report(done);

        var imgMax = new float[b];
        var imgTop = new float[b];
        var scratch = new float[p];
        for (int i = 0; i < b; i++)
        {
            imgMax[i] = System.Numerics.Tensors.TensorPrimitives.Max(patches[i]);
            patches[i].CopyTo(scratch, 0);
            imgTop[i] = Stats.MeanOfLargest(scratch, options.TopN);
        }
        var globals = new float[b][];
        for (int i = 0; i < b; i++) globals[i] = batch[i].Global;
        var rs = RsCin.Rescore(imgMax, globals, options.RsCinWindows);
        return new MuScResult(patches, imgMax, imgTop, rs);
    }
}
