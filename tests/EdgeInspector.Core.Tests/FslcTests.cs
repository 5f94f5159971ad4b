using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;

namespace EdgeInspector.Core.Tests;

/// <summary>Batch FSLC, the evaluation's yardstick.</summary>
public sealed class FslcTests
{
    [Fact]
    public void Lifted_score_by_hand()
    {
        // One view, 2-D. Elements (1,0) with a = 0.5 and (0,1) with a = 0. Query (1,0):
        // plain nearest distance 0; lifted: min(0² + 0.5², ‖(1,0)-(0,1)‖² + 0²) = min(0.25, 2) -> 0.5.
        var layout = new FeatureLayout(1, 1, [new ViewSpec("t", 1, 2)], 1);
        var coreset = new EdgeInspector.Core.Coreset.PatchCoreset(layout, 1);
        coreset.AddRows([new float[] { 1, 0 }], [0f], 10, [0.5f]);
        coreset.AddRows([new float[] { 0, 1 }], [1f], 11, [0f]);
        Assert.Equal([0.5f, 0f], coreset.FusedAdjusted()); // one view: the fused score is that view's
        var query = new FrameFeatures(layout);
        query.Views[0][0] = 1;
        var scores = new float[1];
        ScoreMath.NearestDistance(query, coreset.Packed(), scores);
        Assert.Equal(0f, scores[0], 5);
        coreset.Lift = true;
        ScoreMath.NearestDistance(query, coreset.Packed(), scores);
        Assert.Equal(0.5f, scores[0], 5);
        // Query (0.6, 0.8): d² to (1,0) = 0.8 (+0.25 = 1.05), to (0,1) = 0.4 (+0) -> sqrt(0.4).
        query.Views[0][0] = 0.6f;
        query.Views[0][1] = 0.8f;
        ScoreMath.NearestDistance(query, coreset.Packed(), scores);
        Assert.Equal(MathF.Sqrt(0.4f), scores[0], 5);
        // A changed lift changes the scores.
        coreset.SetAdjusted(1, [0.3f]); // (0,1) now lifted: min(1.05, 0.4 + 0.09) -> sqrt(0.49)
        ScoreMath.NearestDistance(query, coreset.Packed(), scores);
        Assert.Equal(0.7f, scores[0], 5);
    }

    [Fact]
    public void Filter_mask_drops_high_outliers_within_its_budget()
    {
        // Median 1, MAD 0 would be degenerate; use a spread: robust z of 10 is far above 3.
        var keep = Fslc.FilterMask([1, 1.1f, 0.9f, 1.05f, 0.95f, 10, 9], 3, 1.0 / 7);
        Assert.Equal([true, true, true, true, true, false, true], keep); // budget: floor(7/7) = 1, the highest goes
    }

    [Fact]
    public void Batch_fslc_scores_defect_frames_above_normal_ones_and_excludes_self_matches()
    {
        var line = new SyntheticLine();
        var frames = Enumerable.Range(0, 12).Select(i => line.Frame(defect: i == 5)).ToList();
        var fslc = new Fslc(line.Layout, new FslcOptions { InitFrames = 4, TopN = 2, FilterReferences = 11 });
        var (scores, coreset) = fslc.ScoreBatch(frames);
        float worstNormal = scores.Where((_, i) => i != 5).Max(s => s.Image);
        Assert.True(scores[5].Image > 2 * worstNormal, $"defect {scores[5].Image} vs worst normal {worstNormal}");
        // The defect's own patches may sit in the coreset; scoring the frame must still not match them.
        var score5 = fslc.Score(frames[5], 5, coreset);
        Assert.Equal(scores[5].Image, score5.Image, 5);
    }
}
