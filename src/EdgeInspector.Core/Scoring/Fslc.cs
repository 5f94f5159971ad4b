using EdgeInspector.Core.Coreset;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>Adjusted (interval-average) scores of coreset elements: fused over views, and per view (elements × views).</summary>
public sealed record AdjustedScores(float[] Fused, float[] PerView)
{
    /// <summary>Stores the scores on every element of <paramref name="coreset"/> (same order).</summary>
    public void ApplyTo(PatchCoreset coreset)
    {
        int views = coreset.Layout.Views.Count;
        for (int e = 0; e < Fused.Length; e++) coreset.SetAdjusted(e, PerView.AsSpan(e * views, views));
    }
}

/// <summary>
/// Batch FSLC (spec §5.2, our reconstruction of the poster): initial coreset by k-center over R sparsely
/// sampled frames, expansion by seeded k-center over the whole batch, filtering by the interval-average
/// ("score adjusting") prior, then scoring by nearest distance to the coreset with each frame's own
/// elements excluded, and the image score as the mean of the top-N patch scores.
/// </summary>
public sealed class Fslc
{
    private readonly FslcOptions _options;

    /// <summary>Creates the scorer for <paramref name="layout"/>.</summary>
    public Fslc(FeatureLayout layout, FslcOptions options)
    {
        Layout = layout;
        _options = options;
        Projection = new SparseProjection(layout, options.ProjectionDimsPerView, options.Seed);
    }

    /// <summary>The layout.</summary>
    public FeatureLayout Layout { get; }

    /// <summary>The fixed projection used for selection; fixed so that distances stay comparable over time.</summary>
    public SparseProjection Projection { get; }

    /// <summary>Projects every patch of <paramref name="frame"/> (patches × OutputDim).</summary>
    public float[] ProjectFrame(FrameFeatures frame)
    {
        int pd = Projection.OutputDim, p = Layout.Patches;
        var result = new float[p * pd];
        Projection.ProjectAll(frame, result);
        return result;
    }

    /// <summary>Builds the coreset of a batch: init, expand, filter.</summary>
    /// <param name="frames">The batch.</param>
    /// <param name="ids">Their frame ids (sources of the elements).</param>
    public PatchCoreset Build(IReadOnlyList<FrameFeatures> frames, IReadOnlyList<long> ids)
    {
        int b = frames.Count, p = Layout.Patches, pd = Projection.OutputDim;
        if (b < 2) throw new ArgumentException("FSLC needs at least two frames.", nameof(frames));
        var projected = new float[b][];
        Parallel.For(0, b, i => projected[i] = ProjectFrame(frames[i]));

        // Gathers every patch of some frames: their projections and (frame, patch) of each.
        (float[] X, int[] Frame, int[] Patch) Gather(IReadOnlyList<int> which)
        {
            var x = new float[which.Count * p * pd];
            var fr = new int[which.Count * p];
            var pa = new int[which.Count * p];
            int c = 0;
            foreach (int f in which)
            {
                projected[f].CopyTo(x, c * pd);
                for (int q = 0; q < p; q++)
                {
                    fr[c] = f;
                    pa[c++] = q;
                }
            }
            return (x, fr, pa);
        }

        // 1. Initialisation: R frames evenly strided over the batch (temporal spread), k-center over their patches.
        int r = Math.Clamp(_options.InitFrames, 1, b);
        var initFrames = new int[r];
        for (int j = 0; j < r; j++) initFrames[j] = (int)((long)j * b / r);
        var (x0, f0, q0) = Gather(initFrames);
        int nominal = (int)Math.Ceiling(_options.InitFraction * r * p);
        int k0 = Math.Min(f0.Length, nominal);
        int start = new Random(_options.Seed).Next(r * p);
        int[] sel0 = KCenterGreedy.Select(x0, pd, k0, start: start);

        var coreset = new PatchCoreset(Layout, pd, (int)(k0 * (1 + _options.ExpandFraction)) + 1);
        foreach (int s in sel0)
        {
            int f = f0[s], q = q0[s];
            coreset.Add(frames[f], q, projected[f].AsSpan(q * pd, pd), ids[f]);
        }

        // 2. Expansion: farthest-first continuation over every patch of the batch, seeded by M0.
        int ke = (int)Math.Ceiling(_options.ExpandFraction * Math.Min(nominal, r * p));
        if (ke > 0)
        {
            var everyFrame = new int[b];
            for (int i = 0; i < b; i++) everyFrame[i] = i;
            var (all, fa, qa) = Gather(everyFrame);
            int[] sel1 = KCenterGreedy.Select(all, pd, Math.Min(ke, fa.Length), coreset.Projected.ToArray());
            foreach (int s in sel1)
            {
                int f = fa[s], q = qa[s];
                coreset.Add(frames[f], q, projected[f].AsSpan(q * pd, pd), ids[f]);
            }
        }

        // 3. Filtering by the adjusted score.
        var (refs, refIds) = References(frames, ids, _options.FilterReferences);
        var adjusted = AdjustedScores(coreset, refs, refIds, _options.IntervalFraction);
        adjusted.ApplyTo(coreset);
        coreset.Retain(FilterMask(adjusted.Fused, _options.FilterZ, _options.FilterMaxFraction));
        // Score adjusting at scoring time: each element is lifted by its per-view adjusted score, so a
        // patch's score is √(min_m ‖z−m‖² + a_v(m)²) per view. By the triangle inequality a patch's MuSc
        // score is at most its distance to m plus m's own MuSc score a(m), so this tracks the reference.
        coreset.Lift = true;
        return coreset;
    }

    /// <summary>Up to <paramref name="limit"/> of <paramref name="frames"/>, evenly strided: the references of the adjusted score.</summary>
    public static (FrameFeatures[] Frames, long[] Ids) References(IReadOnlyList<FrameFeatures> frames, IReadOnlyList<long> ids, int limit)
    {
        int b = frames.Count;
        int j = Math.Clamp(limit, 1, b);
        var chosen = new FrameFeatures[j];
        var chosenIds = new long[j];
        for (int t = 0; t < j; t++)
        {
            int i = (int)((long)t * b / j);
            chosen[t] = frames[i];
            chosenIds[t] = ids[i];
        }
        return (chosen, chosenIds);
    }

    /// <summary>
    /// The "score adjusting" prior (MuSc Eq. 1-2 applied to coreset elements): for each element, its
    /// nearest distance within each reference frame other than its own source (fused over views), and
    /// the mean of the lowest <paramref name="fraction"/> of those. Normal patterns recur in many frames
    /// and score low; a defect has no good match in most frames and scores high.
    /// </summary>
    /// <remarks>References are packed one at a time per thread, into reused buffers: never a second copy of the batch.</remarks>
    public static AdjustedScores AdjustedScores(PatchCoreset coreset, IReadOnlyList<FrameFeatures> refs, IReadOnlyList<long> refIds, double fraction)
    {
        var rows = new float[coreset.Layout.Views.Count][];
        for (int v = 0; v < rows.Length; v++) rows[v] = coreset.Rows(v).ToArray();
        return AdjustedScores(rows, coreset.Sources.ToArray(), refs, refIds, fraction);
    }

    /// <summary>
    /// The same for loose elements: <paramref name="rows"/>[v] holds their rows in view v (elements × dim),
    /// <paramref name="sources"/> their source frames.
    /// </summary>
    public static AdjustedScores AdjustedScores(float[][] rows, long[] sources, IReadOnlyList<FrameFeatures> refs, IReadOnlyList<long> refIds, double fraction)
    {
        int m = sources.Length, j = refs.Count, views = rows.Length;
        // alpha[(t*views + v)*m + e]: nearest distance of element e within reference t, in view v.
        var alpha = new float[j * views * m];
        Parallel.For(0, j, () => (Best: new float[m], Pack: (FramePack?)null), (t, _, local) =>
        {
            if (local.Pack is null) local.Pack = new FramePack(refs[t]);
            else local.Pack.Repack(refs[t]);
            for (int v = 0; v < views; v++)
            {
                local.Best.AsSpan().Fill(float.NegativeInfinity);
                MaxDot.Accumulate(rows[v], local.Pack.Views[v], local.Best);
                Span<float> a = alpha.AsSpan((t * views + v) * m, m);
                for (int e = 0; e < m; e++) a[e] = MaxDot.UnitDistance(local.Best[e]);
            }
            return local;
        }, _ => { });

        // MuSc's order: interval average per view, then the mean over views (Eq. 2, then Eq. 3).
        var fused = new float[m];
        var perView = new float[m * views];
        var scratch = new float[j];
        for (int e = 0; e < m; e++)
        {
            for (int v = 0; v < views; v++)
            {
                int c = 0;
                for (int t = 0; t < j; t++) if (refIds[t] != sources[e]) scratch[c++] = alpha[(t * views + v) * m + e];
                float ia = c == 0 ? 0 : Stats.MeanOfSmallest(scratch.AsSpan(0, c), Stats.IntervalCount(c, fraction));
                perView[e * views + v] = ia;
                fused[e] += ia / views;
            }
        }
        return new AdjustedScores(fused, perView);
    }

    /// <summary>
    /// Keep-mask of the filter: drop elements whose robust z of the adjusted score exceeds
    /// <paramref name="z"/>, the highest first, at most <paramref name="maxFraction"/> of them.
    /// </summary>
    public static bool[] FilterMask(ReadOnlySpan<float> adjusted, double z, double maxFraction)
    {
        int n = adjusted.Length;
        var keep = new bool[n];
        keep.AsSpan().Fill(true);
        if (n < 3) return keep;
        var scratch = adjusted.ToArray();
        var (median, sigma) = Stats.RobustLocationScale(scratch);
        if (sigma <= 0) return keep;
        int budget = (int)Math.Floor(maxFraction * n);
        var order = Stats.OrderDescending(adjusted);
        for (int t = 0; t < budget; t++)
        {
            int i = order[t];
            if ((adjusted[i] - median) / sigma <= z) break;
            keep[i] = false;
        }
        return keep;
    }

    /// <summary>Scores one frame against <paramref name="coreset"/>, excluding the elements it contributed itself.</summary>
    public FrameScore Score(FrameFeatures frame, long id, PatchCoreset coreset)
    {
        var packed = coreset.Packed();
        var patches = new float[Layout.Patches];
        ScoreMath.NearestDistance(frame, packed, patches, coreset.SegmentOf(id));
        return FrameScore.TopN(patches, _options.TopN);
    }


    /// <summary>Batch FSLC end to end: build the coreset from the batch, then score every frame of it.</summary>
    public (FrameScore[] Scores, PatchCoreset Coreset) ScoreBatch(IReadOnlyList<FrameFeatures> frames)
    {
        var ids = new long[frames.Count];
        for (int i = 0; i < ids.Length; i++) ids[i] = i;
        var coreset = Build(frames, ids);
        coreset.Packed();
        var scores = new FrameScore[frames.Count];
        Parallel.For(0, frames.Count, i => scores[i] = Score(frames[i], i, coreset));
        return (scores, coreset);
    }
}
