using EdgeInspector.Core.Coreset;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Scoring;

namespace EdgeInspector.Core.Tests;

public sealed class StatsTests
{
    [Fact]
    public void Interval_average_is_the_mean_of_the_k_smallest()
    {
        float[] v = [0.9f, 0.1f, 0.5f, 0.3f, 0.7f];
        Assert.Equal((0.1f + 0.3f) / 2, Stats.MeanOfSmallest(v, 2), 6);
    }

    [Fact]
    public void Interval_average_of_dots_by_hand()
    {
        // Three reservoir frames, two patches; dots[t*2 + q]. Patch 0: dots 1, 0.5, −1 are distances 0, 1, 2.
        // Patch 1: dots 0.5, 0.5, 1.1 (past 1 by rounding: distance 0), so 1, 1, 0.
        float[] dots = [1f, 0.5f, 0.5f, 0.5f, -1f, 1.1f];
        var scores = new float[2];
        Stats.IntervalAverageOfDots(dots, 3, 2, scores);
        Assert.Equal(0.5f, scores[0], 6); // (0 + 1) / 2
        Assert.Equal(0.5f, scores[1], 6); // (0 + 1) / 2
        Stats.IntervalAverageOfDots(dots, 3, 1, scores);
        Assert.Equal([0f, 0f], scores);
        Stats.IntervalAverageOfDots(dots, 3, 3, scores);
        Assert.Equal(1f, scores[0], 6);
        Assert.Equal(2f / 3, scores[1], 6);
    }

    [Theory]
    [InlineData(64, 19, 784)] // the default: 64 reservoir frames, MuSc's 30%, a 28×28 grid
    [InlineData(63, 18, 784)] // a frame of the reservoir left out (the warm-up batch)
    [InlineData(1, 1, 37)]
    [InlineData(5, 5, 9)]     // k = n: every frame
    [InlineData(300, 90, 50)] // a long reservoir
    [InlineData(40, 12, 3)]   // fewer patches than a vector: the plain path alone
    public void Interval_average_of_dots_matches_its_plain_twin(int n, int k, int p)
    {
        var rng = new Random(n * 7 + k * 3 + p);
        // Dots from −1 to 1, with ties: a quarter of them repeat the one before.
        var dots = new float[n * p];
        for (int i = 0; i < dots.Length; i++) dots[i] = i > 0 && rng.Next(4) == 0 ? dots[i - 1] : (float)(rng.NextDouble() * 2 - 1);
        var fast = new float[p];
        var plain = new float[p];
        Stats.IntervalAverageOfDots(dots, n, k, fast);
        Stats.IntervalAverageOfDotsScalar(dots, n, k, plain);
        for (int q = 0; q < p; q++) Assert.Equal(plain[q], fast[q], 1e-6f); // float sums against double: about 1e-7 relative
    }

    [Fact]
    public void Interval_average_of_dots_rejects_too_few_dots()
    {
        var e = Assert.Throws<ArgumentException>(() => Stats.IntervalAverageOfDots(new float[10], 4, 2, new float[3]));
        Assert.Contains("4 frames × 3 patches need 12 dots", e.Message);
    }

    [Theory]
    [InlineData(63, 0.3, 18)] // MuSc: floor(0.3 * 63)
    [InlineData(10, 0.3, 3)]
    [InlineData(3, 0.3, 1)]   // floor gives 0; MuSc would average nothing (NaN), we take 1
    [InlineData(1, 0.3, 1)]
    public void Interval_count_follows_musc_with_a_floor_of_one(int n, double fraction, int expected)
        => Assert.Equal(expected, Stats.IntervalCount(n, fraction));

    [Fact]
    public void Top_n_mean_by_hand()
    {
        float[] v = [1, 9, 3, 7, 5];
        Assert.Equal(8f, Stats.MeanOfLargest(v, 2), 6);
        Assert.Equal(5f, Stats.MeanOfLargest([1, 9, 3, 7, 5], 99), 6); // N beyond length: all
    }

    [Fact]
    public void Selection_handles_ties_and_sorted_input()
    {
        var v = Enumerable.Range(0, 1000).Select(i => (float)(i / 10)).ToArray();
        Assert.Equal(0f, Stats.MeanOfSmallest(v, 10), 6);
        Assert.Equal(99f, Stats.MeanOfLargest(v.Reverse().ToArray(), 10), 6);
    }

    [Fact]
    public void Order_descending_by_hand() => Assert.Equal([1, 3, 2, 0], Stats.OrderDescending([0.1f, 0.9f, 0.3f, 0.5f]));

    [Fact]
    public void Quantile_interpolates_like_numpy()
    {
        Assert.Equal(2.5f, Stats.Quantile([4, 1, 3, 2], 0.5), 6);
        Assert.Equal(3.7f, Stats.Quantile([4, 1, 3, 2], 0.9), 5);
    }

    [Fact]
    public void Robust_scale_by_hand()
    {
        var (median, sigma) = Stats.RobustLocationScale([1, 2, 3, 4, 100]);
        Assert.Equal(3f, median);
        Assert.Equal(1.4826f, sigma, 5); // MAD = median(|x-3|) = median(2,1,0,1,97) = 1
    }
}

public sealed class ViewTests
{
    [Fact]
    public void Box_mean_counts_zero_padding()
    {
        // A 3x3 grid of ones, one channel, degree 3: corners see 4 of 9, edges 6 of 9, the centre 9 of 9.
        var layout = new FeatureLayout(3, 3, [new ViewSpec("t", 3, 1)], 1);
        var vb = new ViewBuilder(layout, ["t"], "t");
        var dst = new float[9];
        vb.BoxMean(Enumerable.Repeat(1f, 9).ToArray(), 1, 3, 3, 3, dst);
        Assert.Equal([4 / 9f, 6 / 9f, 4 / 9f, 6 / 9f, 1f, 6 / 9f, 4 / 9f, 6 / 9f, 4 / 9f], dst.Select(x => MathF.Round(x, 6)).ToArray(), new ToleranceComparer(1e-6f));
    }

    [Fact]
    public void Bilinear_resize_matches_torch_align_corners_false()
    {
        // torch.nn.functional.interpolate([[0,1],[2,3]], size=4, mode='bilinear', align_corners=False)
        float[] expected = [0, 0.25f, 0.75f, 1, 0.5f, 0.75f, 1.25f, 1.5f, 1.5f, 1.75f, 2.25f, 2.5f, 2, 2.25f, 2.75f, 3];
        var dst = new float[16];
        ViewBuilder.ResizeBilinear([0, 1, 2, 3], 1, 2, 2, dst, 4, 4);
        Assert.Equal(expected, dst, new ToleranceComparer(1e-6f));
    }

    [Fact]
    public void Resize_weights_are_each_source_pixels_share_of_the_resized_grid()
    {
        // 2 → 4 per axis (the example above): along an axis the outputs take source 0 with weights 1, 0.75,
        // 0.25, 0 and source 1 with 0, 0.25, 0.75, 1, so each source pixel weighs 2 per axis, 4 in all: the
        // resized channel sums to 4 · (0 + 1 + 2 + 3) = 24.
        Assert.Equal([4f, 4, 4, 4], ViewBuilder.ResizeWeights(2, 2, 4, 4), new ToleranceComparer(1e-6f));
        // The twin: the sum of a resized impulse, for the backbone's 14×14 → 28×28 and an uneven 5×3 → 7×8.
        foreach (var (sh, sw, dh, dw) in new[] { (14, 14, 28, 28), (5, 3, 7, 8) })
        {
            var weights = ViewBuilder.ResizeWeights(sh, sw, dh, dw);
            var impulse = new float[sh * sw];
            var dst = new float[dh * dw];
            for (int i = 0; i < impulse.Length; i++)
            {
                Array.Clear(impulse);
                impulse[i] = 1;
                ViewBuilder.ResizeBilinear(impulse, 1, sh, sw, dst, dh, dw);
                Assert.Equal(dst.Sum(), weights[i], 1e-5f);
            }
            Assert.Equal(dh * dw, weights.Sum(), 1e-3f); // every output's weights sum to 1
        }
    }

    [Fact]
    public void Layer_norm_uses_one_mean_and_variance_for_the_whole_tensor()
    {
        float[] x = [1, 2, 3, 4];
        ViewBuilder.LayerNorm(x);
        float sd = MathF.Sqrt(1.25f + 1e-5f); // population variance of 1..4 is 1.25
        Assert.Equal([-1.5f / sd, -0.5f / sd, 0.5f / sd, 1.5f / sd], x, new ToleranceComparer(1e-5f));
    }

    [Fact]
    public void Views_are_unit_rows_on_the_finest_grid()
    {
        var views = new List<ViewSpec> { new("a", 1, 2), new("a", 3, 2), new("b", 1, 3) };
        var layout = new FeatureLayout(4, 4, views, 3);
        var vb = new ViewBuilder(layout, ["a", "b"], "b");
        var rng = new Random(3);
        var a = Enumerable.Range(0, 2 * 16).Select(_ => (float)rng.NextDouble()).ToArray();
        var b = Enumerable.Range(0, 3 * 4).Select(_ => (float)rng.NextDouble()).ToArray();
        var frame = new FrameFeatures(layout);
        vb.Build([new TapTensor(a, 2, 4, 4), new TapTensor(b, 3, 2, 2)], frame);
        for (int v = 0; v < 3; v++)
        {
            int d = views[v].Dim;
            for (int q = 0; q < 16; q++)
            {
                double n = 0;
                for (int k = 0; k < d; k++) n += frame.Views[v][q * d + k] * frame.Views[v][q * d + k];
                Assert.Equal(1.0, n, 4);
            }
        }
        Assert.Equal(1.0, frame.Global.Sum(x => (double)x * x), 4);
        // Degree 1 of tap a: patch (0,0) is the layer-normalised tap value at (0,0), channels 0 and 1, scaled to unit length.
        float mean = a.Average(), sd = MathF.Sqrt(a.Select(x => (x - mean) * (x - mean)).Average() + 1e-5f);
        float c0 = (a[0] - mean) / sd, c1 = (a[16] - mean) / sd, len = MathF.Sqrt(c0 * c0 + c1 * c1);
        Assert.Equal(c0 / len, frame.Views[0][0], 4);
        Assert.Equal(c1 / len, frame.Views[0][1], 4);
    }

    [Fact]
    public void A_view_naming_an_unknown_tap_is_an_error_naming_it()
    {
        var layout = new FeatureLayout(2, 2, [new ViewSpec("stage9", 1, 2)], 2);
        var e = Assert.Throws<ArgumentException>(() => new ViewBuilder(layout, ["stage2"], "stage2"));
        Assert.Contains("stage9", e.Message);
    }
}

public sealed class KCenterGreedyTests
{
    // Points on a line at 0, 1, 3, 10 (1-D).
    private static readonly float[] Line = [0, 1, 3, 10];

    [Fact]
    public void Fixed_start_is_selected_then_farthest_first()
    {
        // From {0}: 10 is farthest; from {0,10}: distances 1, 3 -> 3 (index 2).
        Assert.Equal([0, 3, 2], KCenterGreedy.Select(Line, 1, 3, start: 0));
    }

    [Fact]
    public void Seeds_continue_a_selection_without_reselecting_them()
    {
        // Seed at 0: 10 is farthest, then 3; the point equal to the seed (index 0) never comes back.
        Assert.Equal([3, 2], KCenterGreedy.Select(Line, 1, 2, seeds: [0f]));
    }

    [Fact]
    public void Reports_coverage_distances_and_stops_when_everything_is_covered()
    {
        var dist = new float[4];
        var sel = KCenterGreedy.Select([2, 2, 2, 2], 1, 3, start: 1, minDistance: dist);
        Assert.Equal([1], sel); // duplicates add no coverage
        Assert.All(dist, d => Assert.Equal(0f, d));
    }
}

public sealed class MuScTests
{
    private static List<FrameFeatures> ThreeImages()
    {
        // One view, 2-D unit patches, two patches per image:
        // A = {(1,0), (0.6,0.8)}, B = {(1,0), (1,0)}, C = {(0.8,0.6), (0.8,0.6)}.
        var layout = new FeatureLayout(1, 2, [new ViewSpec("t", 1, 2)], 2);
        float[][] patches = [[1, 0, 0.6f, 0.8f], [1, 0, 1, 0], [0.8f, 0.6f, 0.8f, 0.6f]];
        return patches.Select(p =>
        {
            var f = new FrameFeatures(layout);
            p.CopyTo(f.Views[0], 0);
            f.Global[0] = 1;
            return f;
        }).ToList();
    }

    [Fact]
    public void Mutual_scores_by_hand_with_the_30_percent_interval()
    {
        // k = max(1, floor(0.3*2)) = 1: the nearest distance in the best other image.
        // A: a1 -> B 0 | a2 -> C |(0.6,0.8)-(0.8,0.6)| = sqrt(0.08). B: 0, 0. C: c -> A sqrt(0.08).
        var r = new MuScScorer(new MuScOptions { TopN = 1 }).Score(ThreeImages());
        float s = MathF.Sqrt(0.08f);
        Assert.Equal([0, s], r.Patches[0], new ToleranceComparer(1e-5f));
        Assert.Equal([0, 0], r.Patches[1], new ToleranceComparer(1e-5f));
        Assert.Equal([s, s], r.Patches[2], new ToleranceComparer(1e-5f));
        Assert.Equal([s, 0, s], r.ImageMax, new ToleranceComparer(1e-5f));
    }

    [Fact]
    public void Mutual_scores_by_hand_averaging_every_other_image()
    {
        // Fraction 1: mean over both other images. a1: (0 + sqrt(0.4))/2; a2: (sqrt(0.8) + sqrt(0.08))/2;
        // b: (0 + sqrt(0.4))/2; c: (sqrt(0.08) + sqrt(0.4))/2.
        var r = new MuScScorer(new MuScOptions { IntervalFraction = 1.0 }).Score(ThreeImages());
        float s04 = MathF.Sqrt(0.4f), s08 = MathF.Sqrt(0.8f), s008 = MathF.Sqrt(0.08f);
        Assert.Equal([s04 / 2, (s08 + s008) / 2], r.Patches[0], new ToleranceComparer(1e-5f));
        Assert.Equal([s04 / 2, s04 / 2], r.Patches[1], new ToleranceComparer(1e-5f));
        Assert.Equal([(s008 + s04) / 2, (s008 + s04) / 2], r.Patches[2], new ToleranceComparer(1e-5f));
    }

    [Fact]
    public void RsCin_by_hand()
    {
        // Scores [0, .5, 1] (already min-max). Frames 0 and 1 look alike, 2 is apart.
        // k=1: own score. k=2: frames 0,1 average each other -> .25; frame 2's other neighbour has weight 0 -> 1.
        var r = RsCin.Rescore([0, 0.5f, 1], [[1, 0], [1, 0], [0, 1]], [1, 2]);
        Assert.Equal([0.125f, 0.375f, 1f], r, new ToleranceComparer(1e-6f));
    }
}

public sealed class CalibrationAndMapTests
{
    [Fact]
    public void Calibrated_score_is_a_robust_z_against_accepted_frames()
    {
        var c = new ScoreCalibrator(10);
        foreach (float s in new float[] { 1, 2, 3, 4, 5 }) c.Accept(s);
        Assert.Equal(3 / 1.4826f, c.Calibrate(6), 4); // median 3, MAD 1
        Assert.Equal(0f, c.Calibrate(3), 6);
    }

    [Fact]
    public void Calibration_window_forgets_the_oldest()
    {
        var c = new ScoreCalibrator(3);
        foreach (float s in new float[] { 100, 1, 2, 3 }) c.Accept(s);
        Assert.Equal(3, c.Count);
        Assert.Equal(0f, c.Calibrate(2), 6); // 100 was dropped: median of {1,2,3} is 2
    }

    [Fact]
    public void Map_upsampling_aligns_corners()
    {
        var map = new float[9];
        AnomalyMap.Upsample([0, 1, 2, 3], 2, 2, map, 3, 3);
        Assert.Equal([0, 0.5f, 1, 1, 1.5f, 2, 2, 2.5f, 3], map, new ToleranceComparer(1e-6f));
    }
}

internal sealed class ToleranceComparer(float tolerance) : IEqualityComparer<float>
{
    public bool Equals(float x, float y) => MathF.Abs(x - y) <= tolerance;

    public int GetHashCode(float obj) => 0;
}
