namespace EdgeInspector.Core.Evaluation;

/// <summary>A point on a ROC curve.</summary>
public readonly record struct RocPoint(double Fpr, double Tpr);

/// <summary>Threshold-free detection metrics, computed the way MuSc's utils/metrics.py (sklearn) does, ties included.</summary>
public static class Metrics
{
    /// <summary>
    /// Area under the ROC curve. Tied scores form one step (a diagonal segment), which equals the
    /// Mann-Whitney statistic with ties counted as one half. NaN if either class is empty.
    /// </summary>
    public static double Auroc(ReadOnlySpan<float> scores, ReadOnlySpan<bool> labels) => Summary(scores, labels).Auroc;

    /// <summary>
    /// <see cref="Auroc(ReadOnlySpan{float}, ReadOnlySpan{bool})"/>, <see cref="AveragePrecision(ReadOnlySpan{float}, ReadOnlySpan{bool})"/>
    /// and <see cref="F1Max(ReadOnlySpan{float}, ReadOnlySpan{bool})"/> from one sort and one walk down the thresholds,
    /// in the same order of operations as each alone, so the same values to the bit. A lot's pixels are tens of
    /// millions of scores, nearly all distinct: the walk keeps no list of steps, and the positives and negatives are
    /// sorted apart, as plain floats.
    /// </summary>
    public static (double Auroc, double AveragePrecision, double F1Max) Summary(ReadOnlySpan<float> scores, ReadOnlySpan<bool> labels)
    {
        if (scores.Length != labels.Length) throw new ArgumentException($"{scores.Length} scores for {labels.Length} labels.");
        long pos = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            if (float.IsNaN(scores[i])) throw new ArgumentException($"Score {i} is NaN.", nameof(scores));
            if (labels[i]) pos++;
        }
        long neg = scores.Length - pos;
        var p = new float[pos];
        var n = new float[neg];
        int ip = 0, jn = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (labels[i]) p[ip++] = scores[i]; else n[jn++] = scores[i];
        }
        Array.Sort(p);
        Array.Sort(n);
        var walk = new ThresholdWalk(pos, neg);
        long tp = 0, fp = 0;
        int a = p.Length - 1, b = n.Length - 1;
        while (a >= 0 || b >= 0)
        {
            // The next threshold down: every score equal to it, of either class, is one step.
            float t = a < 0 ? n[b] : b < 0 ? p[a] : Math.Max(p[a], n[b]);
            for (; a >= 0 && p[a] == t; a--) tp++;
            for (; b >= 0 && n[b] == t; b--) fp++;
            walk.Step(tp, fp);
        }
        return (walk.Auroc, walk.AveragePrecision, walk.F1Max);
    }

    /// <summary>ROC points from (0,0) to (1,1), one per distinct score (descending). Empty if a class is empty.</summary>
    public static List<RocPoint> RocCurve(ReadOnlySpan<float> scores, ReadOnlySpan<bool> labels)
    {
        var (steps, pos, neg) = Thresholds(scores, labels);
        var points = new List<RocPoint>();
        if (pos == 0 || neg == 0) return points;
        points.Add(new RocPoint(0, 0));
        foreach (var (tp, fp) in steps) points.Add(new RocPoint((double)fp / neg, (double)tp / pos));
        return points;
    }

    /// <summary>
    /// Average precision, sklearn's definition: Σ (R_n − R_{n−1})·P_n over distinct thresholds, descending.
    /// NaN if there are no positives.
    /// </summary>
    public static double AveragePrecision(ReadOnlySpan<float> scores, ReadOnlySpan<bool> labels) => Summary(scores, labels).AveragePrecision;


    /// <summary>Maximum F1 over all distinct thresholds (MuSc's f1-max). NaN if there are no positives.</summary>
    public static double F1Max(ReadOnlySpan<float> scores, ReadOnlySpan<bool> labels) => Summary(scores, labels).F1Max;


    /// <summary>
    /// Cumulative true and false positives at each distinct score, from the highest down: one step per
    /// group of tied scores, as the walk in <see cref="Summary"/> takes them: the points of <see cref="RocCurve"/>.
    /// </summary>
    private static (List<(long Tp, long Fp)> Steps, long Pos, long Neg) Thresholds(ReadOnlySpan<float> scores, ReadOnlySpan<bool> labels)
    {
        if (scores.Length != labels.Length) throw new ArgumentException($"{scores.Length} scores for {labels.Length} labels.");
        var keys = new float[scores.Length];
        var positive = new bool[scores.Length];
        long pos = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (float.IsNaN(scores[i])) throw new ArgumentException($"Score {i} is NaN.", nameof(scores));
            keys[i] = -scores[i];
            positive[i] = labels[i];
            if (labels[i]) pos++;
        }
        Array.Sort(keys, positive);
        var steps = new List<(long, long)>();
        long tp = 0, fp = 0;
        int k = 0;
        while (k < keys.Length)
        {
            float s = keys[k];
            for (; k < keys.Length && keys[k] == s; k++)
            {
                if (positive[k]) tp++; else fp++;
            }
            steps.Add((tp, fp));
        }
        return (steps, pos, scores.Length - pos);
    }

    /// <summary>
    /// Per-region overlap integrated up to a false-positive rate of <paramref name="maxFpr"/>, as MuSc's
    /// cal_pro_score: <paramref name="steps"/> thresholds evenly spaced from the smallest score upwards;
    /// at each, PRO is the mean over ground-truth regions (8-connected) of the fraction of the region
    /// above the threshold, and FPR is over all normal pixels; points with FPR below the limit are kept,
    /// their FPR rescaled to [0,1], and the area taken by the trapezoid rule.
    /// </summary>
    /// <param name="maps">Per image, anomaly scores (height × width).</param>
    /// <param name="masks">Per image, ground truth of the same size (true = anomalous).</param>
    /// <param name="width">Image width (all images share it).</param>
    /// <param name="maxFpr">FPR limit of the integral (MuSc: 0.3).</param>
    /// <param name="steps">Number of thresholds (MuSc: 200).</param>
    public static double Pro(IReadOnlyList<float[]> maps, IReadOnlyList<bool[]> masks, int width, double maxFpr = 0.3, int steps = 200)
    {
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        foreach (var m in maps) foreach (float v in m) { if (v < min) min = v; if (v > max) max = v; }
        if (!(max > min)) return double.NaN;
        var pixels = new PixelMetrics(min, max, bins: 1, proSteps: steps, maxFpr: maxFpr);
        for (int img = 0; img < maps.Count; img++) pixels.Add(maps[img], masks[img], width);
        return pixels.Pro;
    }
}

/// <summary>
/// AUROC, AP and F1-max accumulated one threshold at a time, from the highest down: each step is the
/// cumulative true and false positives at a distinct score (a group of tied scores is one step). The one
/// definition of the three, for the exact walk over sorted scores and for binned pixel counts alike.
/// </summary>
internal struct ThresholdWalk(long pos, long neg)
{
    private double _area, _fpr0, _tpr0, _ap, _lastRecall, _f1;

    public void Step(long tp, long fp)
    {
        if (pos > 0 && neg > 0)
        {
            double fpr = (double)fp / neg, tpr = (double)tp / pos;
            _area += (fpr - _fpr0) * (tpr + _tpr0) / 2;
            (_fpr0, _tpr0) = (fpr, tpr);
        }
        if (pos > 0)
        {
            double recall = (double)tp / pos, precision = (double)tp / (tp + fp);
            _ap += (recall - _lastRecall) * tp / (tp + fp);
            _lastRecall = recall;
            if (precision + recall > 0) _f1 = Math.Max(_f1, 2 * precision * recall / (precision + recall));
        }
    }

    /// <summary>Trapezoids through the steps from (0, 0); NaN if either class is empty.</summary>
    public readonly double Auroc => pos == 0 || neg == 0 ? double.NaN : _area;

    /// <summary>Σ (R_n − R_{n−1})·P_n; NaN without positives.</summary>
    public readonly double AveragePrecision => pos == 0 ? double.NaN : _ap;

    /// <summary>The best F1 at any step; NaN without positives.</summary>
    public readonly double F1Max => pos == 0 ? double.NaN : _f1;
}

/// <summary>Connected-component labelling of a binary mask with 8-connectivity (skimage.measure.label's default in 2-D).</summary>
public static class ConnectedComponents
{
    /// <summary>Labels 1..count for the true pixels, 0 for background.</summary>
    public static int[] Label(ReadOnlySpan<bool> mask, int width, out int count)
    {
        int n = mask.Length, height = n / width;
        var labels = new int[n];
        count = 0;
        var stack = new Stack<int>();
        for (int start = 0; start < n; start++)
        {
            if (!mask[start] || labels[start] != 0) continue;
            count++;
            labels[start] = count;
            stack.Push(start);
            while (stack.Count > 0)
            {
                int i = stack.Pop();
                int y = i / width, x = i % width;
                for (int dy = -1; dy <= 1; dy++)
                {
                    int yy = y + dy;
                    if (yy < 0 || yy >= height) continue;
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int xx = x + dx;
                        if (xx < 0 || xx >= width) continue;
                        int j = yy * width + xx;
                        if (mask[j] && labels[j] == 0)
                        {
                            labels[j] = count;
                            stack.Push(j);
                        }
                    }
                }
            }
        }
        return labels;
    }
}
