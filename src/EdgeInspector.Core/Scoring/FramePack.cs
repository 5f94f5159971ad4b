using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>A frame's views packed as references for the max-dot kernel (one <see cref="PackedPanels"/> per view).</summary>
public sealed class FramePack
{
    /// <summary>Packs every view of <paramref name="frame"/>.</summary>
    public FramePack(FrameFeatures frame)
    {
        Views = new PackedPanels[frame.Views.Length];
        for (int v = 0; v < Views.Length; v++) Views[v] = new PackedPanels();
        Repack(frame);
    }

    /// <summary>Packs <paramref name="frame"/> into this instance's buffers.</summary>
    public void Repack(FrameFeatures frame)
    {
        for (int v = 0; v < Views.Length; v++)
        {
            int d = frame.Layout.Views[v].Dim;
            Views[v].Repack(frame.Views[v], d, [frame.Views[v].Length / d]);
        }
    }

    /// <summary>Per view.</summary>
    public PackedPanels[] Views { get; }
}

/// <summary>Anomaly scores for one frame.</summary>
/// <param name="Patches">Fused patch scores on the patch grid (row-major).</param>
/// <param name="Image">The scorer's image score.</param>
public sealed record FrameScore(float[] Patches, float Image)
{
    /// <summary>A frame's result from its fused patch scores: the image score is the mean of the <paramref name="topN"/> largest (1: the maximum).</summary>
    public static FrameScore TopN(float[] patches, int topN) => new(patches, ImageScore(patches, topN));

    /// <summary>The mean of the <paramref name="topN"/> largest of <paramref name="patches"/>, which stay as they are.</summary>
    public static float ImageScore(ReadOnlySpan<float> patches, int topN)
    {
        // The selection reorders its input: it works on a pooled copy, the map stays as it is.
        var scratch = System.Buffers.ArrayPool<float>.Shared.Rent(patches.Length);
        try
        {
            patches.CopyTo(scratch);
            return Numerics.Stats.MeanOfLargest(scratch.AsSpan(0, patches.Length), topN);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(scratch);
        }
    }
}

/// <summary>Helpers shared by the scorers.</summary>
public static class ScoreMath
{
    /// <summary>
    /// Fused patch scores of <paramref name="frame"/> by nearest distance to <paramref name="refs"/>
    /// (per view), mean over views (MuSc Eq. 3 fusion). <paramref name="skipSegment"/> excludes the
    /// references of one segment (the frame's own elements).
    /// </summary>
    public static void NearestDistance(FrameFeatures frame, IReadOnlyList<PackedPanels> refs, Span<float> scores, int skipSegment = -1)
    {
        int p = frame.Layout.Patches;
        int views = frame.Views.Length;
        // Views are independent searches: run them side by side, one distance buffer per view.
        var perView = new float[views * p];
        Parallel.For(0, views, v =>
        {
            Span<float> best = perView.AsSpan(v * p, p);
            best.Fill(float.NegativeInfinity);
            MaxDot.Accumulate(frame.Views[v], refs[v], best, default, skipSegment);
            for (int q = 0; q < p; q++) best[q] = MaxDot.UnitDistance(best[q]);
        });
        FuseViews(perView, views, scores);
    }

    /// <summary>MuSc Eq. 3 fusion: <paramref name="scores"/>[q] ← mean over the views of <paramref name="perView"/>[v·p + q] (p = scores.Length).</summary>
    public static void FuseViews(ReadOnlySpan<float> perView, int views, Span<float> scores)
    {
        int p = scores.Length;
        scores.Clear();
        for (int v = 0; v < views; v++)
        {
            ReadOnlySpan<float> d = perView.Slice(v * p, p);
            for (int q = 0; q < p; q++) scores[q] += d[q];
        }
        for (int q = 0; q < p; q++) scores[q] /= views;
    }
}
