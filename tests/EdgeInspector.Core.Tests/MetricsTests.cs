using EdgeInspector.Core.Evaluation;

namespace EdgeInspector.Core.Tests;

public sealed class MetricsTests
{
    private static readonly float[] Scores = [0.1f, 0.4f, 0.35f, 0.8f];
    private static readonly bool[] Labels = [false, false, true, true];

    [Fact]
    public void Auroc_by_hand() => Assert.Equal(0.75, Metrics.Auroc(Scores, Labels), 9);

    [Fact]
    public void Auroc_counts_ties_as_one_half()
    {
        // Positives {0.5, 0.9}, negatives {0.5, 0.5}: 0.9 beats both (2), 0.5 ties both (2 x 0.5) -> 3/4.
        Assert.Equal(0.75, Metrics.Auroc([0.5f, 0.5f, 0.5f, 0.9f], [false, true, false, true]), 9);
    }

    [Fact]
    public void Auroc_is_undefined_with_one_class() => Assert.True(double.IsNaN(Metrics.Auroc([1, 2], [true, true])));

    [Fact]
    public void Average_precision_by_hand()
    {
        // Descending: 0.8 (+) P=1 R=.5; 0.4 (-); 0.35 (+) P=2/3 R=1 -> AP = .5*1 + .5*2/3.
        Assert.Equal(0.5 + 0.5 * 2.0 / 3.0, Metrics.AveragePrecision(Scores, Labels), 9);
    }

    [Fact]
    public void Average_precision_groups_tied_scores()
    {
        // All tied: one threshold, P = 1/2, R = 1.
        Assert.Equal(0.5, Metrics.AveragePrecision([1, 1, 1, 1], [true, false, true, false]), 9);
    }

    [Fact]
    public void F1_max_by_hand()
    {
        // Thresholds: 0.8 -> P 1, R .5, F1 2/3; 0.35 -> P 2/3, R 1, F1 0.8.
        Assert.Equal(0.8, Metrics.F1Max(Scores, Labels), 9);
    }

    [Theory]
    [InlineData(300, 7, 0.3)] // few distinct scores: most thresholds are ties across the classes
    [InlineData(500, 100000, 0.1)] // nearly all distinct
    [InlineData(40, 3, 0.0)] // no positives: AUROC, AP and F1 are undefined
    public void One_walk_gives_what_counting_each_threshold_gives(int n, int levels, double share)
    {
        // The plain twin: AUROC as the Mann-Whitney count over every (positive, negative) pair, ties one half;
        // AP and F1 from the true and false positives at or above each distinct score, counted afresh.
        var rng = new Random(n + levels);
        var scores = new float[n];
        var labels = new bool[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = rng.NextDouble() < share;
            // Positives score higher on average, with overlap; -0 and +0 both occur at the lowest level.
            int level = Math.Min(levels - 1, (int)(rng.NextDouble() * levels * (labels[i] ? 1.0 : 0.7)));
            scores[i] = level == 0 ? (rng.Next(2) == 0 ? -0f : 0f) : level / (float)levels;
        }
        var (auroc, ap, f1) = Metrics.Summary(scores, labels);

        long pos = labels.Count(l => l), neg = n - pos;
        double wins = 0;
        for (int i = 0; i < n; i++)
        {
            if (!labels[i]) continue;
            for (int j = 0; j < n; j++)
            {
                if (labels[j]) continue;
                wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0;
            }
        }
        double twinAp = 0, lastRecall = 0, twinF1 = 0;
        foreach (float t in scores.Distinct().OrderByDescending(x => x))
        {
            long tp = 0, fp = 0;
            for (int i = 0; i < n; i++)
            {
                if (scores[i] >= t) { if (labels[i]) tp++; else fp++; }
            }
            if (pos == 0) continue;
            double recall = (double)tp / pos, precision = (double)tp / (tp + fp);
            twinAp += (recall - lastRecall) * precision;
            lastRecall = recall;
            if (tp > 0) twinF1 = Math.Max(twinF1, 2 * precision * recall / (precision + recall));
        }
        if (pos == 0)
        {
            Assert.True(double.IsNaN(auroc) && double.IsNaN(ap) && double.IsNaN(f1));
            return;
        }
        Assert.Equal(wins / (pos * neg), auroc, 12);
        Assert.Equal(twinAp, ap, 12);
        Assert.Equal(twinF1, f1, 12);
        // The three alone are the same walk.
        Assert.Equal(auroc, Metrics.Auroc(scores, labels));
        Assert.Equal(ap, Metrics.AveragePrecision(scores, labels));
        Assert.Equal(f1, Metrics.F1Max(scores, labels));
    }

    [Fact]
    public void Streamed_pixel_metrics_equal_the_exact_ones_on_scores_that_lie_on_the_bins()
    {
        // The plain twin: scores k/16 (k = 0..15) over [0, 1] with 16 bins sit exactly on the bins' lower edges, so the
        // counted metrics are the exact ones, ties included; added frame by frame in two halves.
        var rng = new Random(3);
        int w = 8, h = 6, frames = 5;
        var all = new List<float>();
        var labels = new List<bool>();
        var pixels = new PixelMetrics(0, 1, bins: 16);
        for (int f = 0; f < frames; f++)
        {
            var map = new float[w * h];
            var mask = new bool[w * h];
            for (int p = 0; p < map.Length; p++)
            {
                mask[p] = f > 1 && p % w < 3 && p / w < 2;
                map[p] = Math.Min(15, rng.Next(0, 12) + (mask[p] ? 5 : 0)) / 16f;
            }
            pixels.Add(map, mask, w);
            all.AddRange(map);
            labels.AddRange(mask);
        }
        Assert.Equal(Metrics.Auroc(all.ToArray(), labels.ToArray()), pixels.Auroc, 12);
        Assert.Equal(Metrics.AveragePrecision(all.ToArray(), labels.ToArray()), pixels.AveragePrecision, 12);
        Assert.Equal(Metrics.F1Max(all.ToArray(), labels.ToArray()), pixels.F1Max, 12);
    }

    [Fact]
    public void Streamed_pixel_metrics_are_within_their_bound_of_the_exact_ones_on_continuous_scores()
    {
        var rng = new Random(4);
        int w = 40, h = 30;
        var maps = new List<float[]>();
        var masks = new List<bool[]>();
        float min = float.MaxValue, max = float.MinValue;
        for (int f = 0; f < 6; f++)
        {
            var map = new float[w * h];
            var mask = new bool[w * h];
            int cx = rng.Next(w), cy = rng.Next(h);
            for (int p = 0; p < map.Length; p++)
            {
                mask[p] = f > 0 && Math.Abs(p % w - cx) <= 3 && Math.Abs(p / w - cy) <= 2;
                map[p] = (float)rng.NextDouble() + (mask[p] ? 0.4f : 0f);
                min = Math.Min(min, map[p]);
                max = Math.Max(max, map[p]);
            }
            maps.Add(map);
            masks.Add(mask);
        }
        var pixels = new PixelMetrics(min, max);
        for (int f = 0; f < maps.Count; f++) pixels.Add(maps[f], masks[f], w);
        float[] flat = [.. maps.SelectMany(m => m)];
        bool[] truth = [.. masks.SelectMany(m => m)];
        // 2^20 bins over 7,200 pixels: hardly two pixels share a bin, so the counted curve is the exact one
        // to within a few of the 7,200 × 7,200 pairs.
        Assert.Equal(Metrics.Auroc(flat, truth), pixels.Auroc, 4);
        Assert.Equal(Metrics.AveragePrecision(flat, truth), pixels.AveragePrecision, 3);
        Assert.Equal(Metrics.F1Max(flat, truth), pixels.F1Max, 3);
        // PRO counts the same thresholds either way: equal.
        Assert.Equal(Metrics.Pro(maps, masks, w), pixels.Pro, 12);
    }

    [Fact]
    public void Pro_by_hand()
    {
        // One 1x6 image, region = pixels {0,1} scored {5, 1.5}; normal pixels {1, 3, 2, 0}.
        // Thresholds 0..4 (min 0, max 5, 5 steps). FPR < 0.3 at th 2 (.25, PRO .5), th 3 (0, .5), th 4 (0, .5).
        // Rescaled FPR 1, 0, 0 with PRO .5 throughout: area .5.
        var pro = Metrics.Pro([[5, 1.5f, 1, 3, 2, 0]], [[true, true, false, false, false, false]], 6, 0.3, 5);
        Assert.Equal(0.5, pro, 9);
    }

    [Fact]
    public void Pro_matches_a_plain_port_of_musc_on_random_maps()
    {
        var rng = new Random(5);
        int w = 12, h = 10;
        var maps = new List<float[]>();
        var masks = new List<bool[]>();
        for (int i = 0; i < 4; i++)
        {
            var mask = new bool[w * h];
            var map = new float[w * h];
            int cx = rng.Next(w), cy = rng.Next(h);
            for (int p = 0; p < w * h; p++)
            {
                int x = p % w, y = p / w;
                mask[p] = i > 0 && Math.Abs(x - cx) <= 2 && Math.Abs(y - cy) <= 1 || i == 3 && x == 0 && y == 0;
                map[p] = (float)rng.NextDouble() + (mask[p] ? 0.6f : 0f);
            }
            maps.Add(map);
            masks.Add(mask);
        }
        Assert.Equal(PlainPro(maps, masks, w, 0.3, 200), Metrics.Pro(maps, masks, w), 6);
    }

    /// <summary>A direct port of MuSc's cal_pro_score: a loop over thresholds, regions by flood fill.</summary>
    private static double PlainPro(List<float[]> maps, List<bool[]> masks, int w, double maxFpr, int steps)
    {
        float min = maps.SelectMany(m => m).Min(), max = maps.SelectMany(m => m).Max();
        double delta = (max - min) / (double)steps;
        var fprs = new List<double>();
        var pros = new List<double>();
        for (int t = 0; t < steps; t++)
        {
            double th = min + t * delta;
            var overlaps = new List<double>();
            long fp = 0, normals = 0;
            for (int i = 0; i < maps.Count; i++)
            {
                var labels = ConnectedComponents.Label(masks[i], w, out int count);
                for (int r = 1; r <= count; r++)
                {
                    int area = 0, hit = 0;
                    for (int p = 0; p < labels.Length; p++)
                    {
                        if (labels[p] != r) continue;
                        area++;
                        if (maps[i][p] > th) hit++;
                    }
                    overlaps.Add((double)hit / area);
                }
                for (int p = 0; p < labels.Length; p++)
                {
                    if (masks[i][p]) continue;
                    normals++;
                    if (maps[i][p] > th) fp++;
                }
            }
            double fpr = (double)fp / normals;
            if (fpr < maxFpr)
            {
                fprs.Add(fpr);
                pros.Add(overlaps.Average());
            }
        }
        double lo = fprs.Min(), hi = fprs.Max();
        var x = fprs.Select(f => (f - lo) / (hi - lo)).ToList();
        double area2 = 0;
        for (int i = 1; i < x.Count; i++) area2 += (x[i - 1] - x[i]) * (pros[i] + pros[i - 1]) / 2;
        return area2;
    }

    [Fact]
    public void Components_join_diagonals()
    {
        // X . .
        // . X .
        // . . . X   -> the first two touch diagonally (one region); the last is alone.
        bool[] mask = [true, false, false, false, false, true, false, false, false, false, false, true];
        var labels = ConnectedComponents.Label(mask, 4, out int count);
        Assert.Equal(2, count);
        Assert.Equal(labels[0], labels[5]);
        Assert.NotEqual(labels[0], labels[11]);
    }
}
