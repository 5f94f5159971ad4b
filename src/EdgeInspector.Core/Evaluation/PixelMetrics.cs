namespace EdgeInspector.Core.Evaluation;

/// <summary>
/// Pixel metrics over more maps than memory holds at once (every frame's map at the full resolution of its
/// region): each frame's map and ground truth are added, counted, and let go. The scores' range is known
/// beforehand (the maps are upsampled from grids whose range bounds them).
/// <list type="bullet">
/// <item>AUROC, AP and F1-max are <see cref="Metrics"/>' own formulas over the scores counted in
/// <c>bins</c> equal bins over [min, max]: exact for scores that already lie on the bins, and otherwise off
/// by at most the share of pixels that fall into one bin with pixels of the other class.</item>
/// <item>PRO is MuSc's cal_pro_score, as <see cref="Metrics.Pro"/> (which uses this class).</item>
/// </list>
/// </summary>
public sealed class PixelMetrics
{
    private readonly float _min;
    private readonly double _scale, _delta;
    private readonly long[] _normal, _anomalous;
    private readonly int _proSteps;
    private readonly double _maxFpr;
    private readonly long[] _proNormal;
    private readonly double[] _regionOverlapSum;
    private long _proNormalCount;
    private int _regionCount;

    /// <param name="min">The lowest score any added map holds.</param>
    /// <param name="max">The highest.</param>
    /// <param name="bins">Bins of the AUROC, AP and F1-max counts.</param>
    /// <param name="proSteps">PRO's thresholds (MuSc: 200).</param>
    /// <param name="maxFpr">PRO's false-positive-rate limit (MuSc: 0.3).</param>
    public PixelMetrics(float min, float max, int bins = 1 << 20, int proSteps = 200, double maxFpr = 0.3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(proSteps, 1);
        _min = min;
        _scale = max > min ? bins / ((double)max - min) : 0;
        _delta = (max - min) / (double)proSteps;
        _normal = new long[bins];
        _anomalous = new long[bins];
        _proSteps = proSteps;
        _maxFpr = maxFpr;
        _proNormal = new long[proSteps + 1];
        _regionOverlapSum = new double[proSteps];
    }

    /// <summary>Counts one frame: its map and its ground truth (true = anomalous), <paramref name="width"/> pixels a row.</summary>
    public void Add(ReadOnlySpan<float> map, ReadOnlySpan<bool> mask, int width)
    {
        if (map.Length != mask.Length) throw new ArgumentException($"A map of {map.Length} pixels with a mask of {mask.Length}.", nameof(mask));
        int last = _normal.Length - 1;
        for (int i = 0; i < map.Length; i++)
        {
            float v = map[i];
            if (float.IsNaN(v)) throw new ArgumentException($"Pixel {i} is NaN.", nameof(map));
            int b = (int)Math.Clamp((v - _min) * _scale, 0, last);
            if (mask[i]) _anomalous[b]++;
            else
            {
                _normal[b]++;
                _proNormal[ProBin(v)]++;
                _proNormalCount++;
            }
        }
        if (!(_delta > 0)) return;
        var labels = ConnectedComponents.Label(mask, width, out int count);
        if (count == 0) return;
        var hists = new long[count, _proSteps + 1];
        var areas = new long[count];
        for (int i = 0; i < map.Length; i++)
        {
            int l = labels[i];
            if (l == 0) continue;
            hists[l - 1, ProBin(map[i])]++;
            areas[l - 1]++;
        }
        for (int r = 0; r < count; r++)
        {
            long above = areas[r];
            for (int t = 0; t < _proSteps; t++)
            {
                above -= hists[r, t]; // pixels with bin > t exceed threshold t
                _regionOverlapSum[t] += (double)above / areas[r];
            }
            _regionCount++;
        }
    }

    // The number of PRO thresholds th_t = min + t·delta (t = 0..steps−1) a score strictly exceeds.
    private int ProBin(float v) => _delta > 0 ? (int)Math.Clamp(Math.Ceiling((v - _min) / _delta), 0, _proSteps) : 0;

    /// <summary>
    /// AUROC, AP and F1-max from one walk down the bins that hold a pixel, from the highest: each such bin is
    /// one step of cumulative true and false positives (<see cref="ThresholdWalk"/>).
    /// </summary>
    public (double Auroc, double AveragePrecision, double F1Max) Summary
    {
        get
        {
            long pos = 0, neg = 0;
            for (int b = 0; b < _normal.Length; b++)
            {
                pos += _anomalous[b];
                neg += _normal[b];
            }
            var walk = new ThresholdWalk(pos, neg);
            long tp = 0, fp = 0;
            for (int b = _normal.Length - 1; b >= 0; b--)
            {
                if (_normal[b] == 0 && _anomalous[b] == 0) continue;
                tp += _anomalous[b];
                fp += _normal[b];
                walk.Step(tp, fp);
            }
            return (walk.Auroc, walk.AveragePrecision, walk.F1Max);
        }
    }

    /// <summary>Area under the pixel ROC curve; NaN if either class is empty.</summary>
    public double Auroc => Summary.Auroc;

    /// <summary>Pixel average precision; NaN without anomalous pixels.</summary>
    public double AveragePrecision => Summary.AveragePrecision;

    /// <summary>Pixel F1-max; NaN without anomalous pixels.</summary>
    public double F1Max => Summary.F1Max;

    /// <summary>Per-region overlap up to the false-positive-rate limit (MuSc's cal_pro_score); NaN without regions or normal pixels.</summary>
    public double Pro
    {
        get
        {
            if (!(_delta > 0) || _regionCount == 0 || _proNormalCount == 0) return double.NaN;
            var fprs = new List<double>();
            var pros = new List<double>();
            long normalAbove = _proNormalCount;
            for (int t = 0; t < _proSteps; t++)
            {
                normalAbove -= _proNormal[t];
                double fpr = (double)normalAbove / _proNormalCount;
                if (fpr < _maxFpr)
                {
                    fprs.Add(fpr);
                    pros.Add(_regionOverlapSum[t] / _regionCount);
                }
            }
            if (fprs.Count < 2) return double.NaN;
            double fMin = double.MaxValue, fMax = double.MinValue;
            foreach (double f in fprs) { fMin = Math.Min(fMin, f); fMax = Math.Max(fMax, f); }
            if (!(fMax > fMin)) return double.NaN;
            // Thresholds rise, so FPR falls: walk backwards for an ascending trapezoid.
            double area = 0;
            for (int i = fprs.Count - 1; i > 0; i--)
            {
                double x0 = (fprs[i] - fMin) / (fMax - fMin), x1 = (fprs[i - 1] - fMin) / (fMax - fMin);
                area += (x1 - x0) * (pros[i] + pros[i - 1]) / 2;
            }
            return area;
        }
    }
}
