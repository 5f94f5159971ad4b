using OpenCvSharp;

namespace EdgeInspector.Imaging;

/// <summary>Heatmap overlays: what a quality engineer looks at to see why a part was rejected.</summary>
public static class HeatmapRenderer
{
    /// <summary>
    /// Blends a jet-coloured anomaly map over the image. <paramref name="map"/> is (mapHeight × mapWidth),
    /// scaled so that <paramref name="low"/> is blue and <paramref name="high"/> red. A ground-truth mask,
    /// if given (same size as the map), is outlined in white. A caption is written in the corner.
    /// </summary>
    public static Mat Overlay(Mat image, ReadOnlySpan<float> map, int mapWidth, int mapHeight, float low, float high, ReadOnlySpan<bool> mask = default, string? caption = null)
        => Overlay(image, null, map, mapWidth, mapHeight, low, high, mask, caption);

    /// <summary>
    /// The same over a region of the image (<paramref name="region"/>, in the image's pixels): the map covers
    /// the region only, the rest of the frame stays as it is, and the region is outlined, so that whoever
    /// reads the heatmap sees the whole part and what was inspected of it.
    /// </summary>
    public static Mat Overlay(Mat image, Rect? region, ReadOnlySpan<float> map, int mapWidth, int mapHeight, float low, float high, ReadOnlySpan<bool> mask = default, string? caption = null)
    {
        if (region is not { } r) return OverlayWhole(image, map, mapWidth, mapHeight, low, high, mask, caption);
        using var whole = ImagePreprocessor.ToBgr8(image);
        var result = whole.Clone();
        using (var inside = new Mat(whole, r))
        using (var painted = OverlayWhole(inside, map, mapWidth, mapHeight, low, high, mask, null))
        using (var target = new Mat(result, r))
        {
            painted.CopyTo(target);
        }
        int thickness = Math.Max(2, Math.Max(result.Width, result.Height) / 256);
        Cv2.Rectangle(result, r, Scalar.Yellow, thickness);
        if (caption is not null) Caption(result, caption);
        return result;
    }

    private static void Caption(Mat result, string caption)
    {
        Cv2.PutText(result, caption, new Point(4, 14), HersheyFonts.HersheySimplex, 0.4, Scalar.Black, 3);
        Cv2.PutText(result, caption, new Point(4, 14), HersheyFonts.HersheySimplex, 0.4, Scalar.White, 1);
    }

    private static Mat OverlayWhole(Mat image, ReadOnlySpan<float> map, int mapWidth, int mapHeight, float low, float high, ReadOnlySpan<bool> mask, string? caption)
    {
        using var bgr = ImagePreprocessor.ToBgr8(image);
        using var grey = new Mat(mapHeight, mapWidth, MatType.CV_8UC1);
        float range = high > low ? high - low : 1f;
        for (int y = 0; y < mapHeight; y++)
        {
            for (int x = 0; x < mapWidth; x++)
            {
                float v = (map[y * mapWidth + x] - low) / range;
                grey.Set(y, x, (byte)Math.Clamp((int)(v * 255), 0, 255));
            }
        }
        using var greyFull = new Mat();
        Cv2.Resize(grey, greyFull, bgr.Size(), 0, 0, InterpolationFlags.Linear);
        using var colour = new Mat();
        Cv2.ApplyColorMap(greyFull, colour, ColormapTypes.Jet);
        var result = new Mat();
        Cv2.AddWeighted(bgr, 0.55, colour, 0.45, 0, result);
        if (!mask.IsEmpty)
        {
            using var m = new Mat(mapHeight, mapWidth, MatType.CV_8UC1);
            for (int y = 0; y < mapHeight; y++)
            {
                for (int x = 0; x < mapWidth; x++) m.Set(y, x, mask[y * mapWidth + x] ? (byte)255 : (byte)0);
            }
            using var mFull = new Mat();
            Cv2.Resize(m, mFull, bgr.Size(), 0, 0, InterpolationFlags.Nearest);
            Cv2.FindContours(mFull, out var contours, out _, RetrievalModes.External, ContourApproximationModes.ApproxSimple);
            Cv2.DrawContours(result, contours, -1, Scalar.White, 1);
        }
        if (caption is not null) Caption(result, caption);
        return result;
    }
}

/// <summary>ROC curves as PNG images.</summary>
public static class PlotRenderer
{
    /// <summary>Draws ROC curves (one per series, with its AUROC in the legend) on a 480×480 canvas.</summary>
    public static Mat Roc(IReadOnlyList<(string Name, IReadOnlyList<(double Fpr, double Tpr)> Points, double Auroc)> series, string title)
    {
        const int size = 480, margin = 50;
        var img = new Mat(size, size, MatType.CV_8UC3, Scalar.White);
        int plot = size - 2 * margin;
        Point Map(double fpr, double tpr) => new(margin + (int)(fpr * plot), size - margin - (int)(tpr * plot));
        Cv2.Rectangle(img, new Point(margin, margin), new Point(margin + plot, margin + plot), Scalar.Black, 1);
        Cv2.Line(img, Map(0, 0), Map(1, 1), new Scalar(200, 200, 200), 1);
        for (int t = 0; t <= 10; t += 2)
        {
            double v = t / 10.0;
            Cv2.PutText(img, v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture), new Point(margin + (int)(v * plot) - 8, size - margin + 16), HersheyFonts.HersheySimplex, 0.35, Scalar.Black);
            Cv2.PutText(img, v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture), new Point(margin - 30, size - margin - (int)(v * plot) + 4), HersheyFonts.HersheySimplex, 0.35, Scalar.Black);
        }
        Cv2.PutText(img, "false positive rate", new Point(size / 2 - 60, size - 12), HersheyFonts.HersheySimplex, 0.45, Scalar.Black);
        Cv2.PutText(img, "TPR", new Point(8, margin - 10), HersheyFonts.HersheySimplex, 0.45, Scalar.Black);
        Cv2.PutText(img, title, new Point(margin, 30), HersheyFonts.HersheySimplex, 0.5, Scalar.Black);
        Scalar[] colours = [new(200, 80, 0), new(0, 0, 220), new(0, 160, 0), new(160, 0, 160)];
        for (int s = 0; s < series.Count; s++)
        {
            var pts = series[s].Points;
            for (int i = 1; i < pts.Count; i++) Cv2.Line(img, Map(pts[i - 1].Fpr, pts[i - 1].Tpr), Map(pts[i].Fpr, pts[i].Tpr), colours[s % colours.Length], 2);
            string label = $"{series[s].Name}  AUROC {series[s].Auroc.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture)}";
            Cv2.PutText(img, label, new Point(margin + plot / 3, size - margin - 14 - 16 * s), HersheyFonts.HersheySimplex, 0.45, colours[s % colours.Length]);
        }
        return img;
    }
    /// <summary>
    /// A bar width for a histogram of <paramref name="latenciesMs"/>: the smallest of 1, 2, 2.5 and 5 ms times a
    /// power of ten that draws the slowest within about 40 bars, so a run of 40-100 ms shows its shape in 2.5 ms
    /// bars and one of a second in 25 ms bars.
    /// </summary>
    public static double LatencyBinMs(IReadOnlyList<double> latenciesMs)
    {
        double max = 0;
        foreach (double v in latenciesMs) max = Math.Max(max, v);
        return NiceStep(max / 40);
    }

    /// <summary>The smallest of 1, 2, 2.5 and 5 times a power of ten (from 1 on) at or over <paramref name="wanted"/>.</summary>
    private static double NiceStep(double wanted)
    {
        for (double scale = 1; ; scale *= 10)
        {
            foreach (double step in new[] { 1, 2, 2.5, 5 })
            {
                if (step * scale >= wanted) return step * scale;
            }
        }
    }

    /// <summary>
    /// A histogram of latencies (ms) on a 720×420 canvas: bars of <paramref name="binMs"/>, the count on a
    /// log scale (so that the tail's few frames stay visible beside the bulk), and the p50, p95 and p99 marked.
    /// </summary>
    public static Mat LatencyHistogram(IReadOnlyList<double> latenciesMs, double binMs, string title)
    {
        const int width = 720, height = 420, left = 60, right = 20, top = 50, bottom = 50;
        var img = new Mat(height, width, MatType.CV_8UC3, Scalar.White);
        var sorted = latenciesMs.Order().ToArray();
        if (sorted.Length == 0) return img;
        double max = Math.Max(binMs, Math.Ceiling(sorted[^1] / binMs) * binMs);
        int bins = (int)Math.Ceiling(max / binMs);
        var counts = new int[bins];
        foreach (double v in sorted) counts[Math.Min(bins - 1, (int)(v / binMs))]++;
        double logMax = Math.Log10(counts.Max() + 1);
        int plotW = width - left - right, plotH = height - top - bottom;
        int X(double ms) => left + (int)(ms / max * plotW);
        int Y(int count) => height - bottom - (int)(Math.Log10(count + 1) / logMax * plotH);
        for (int b = 0; b < bins; b++)
        {
            if (counts[b] > 0) Cv2.Rectangle(img, new Point(X(b * binMs), Y(counts[b])), new Point(Math.Max(X((b + 1) * binMs) - 1, X(b * binMs)), height - bottom), new Scalar(180, 120, 40), -1);
        }
        Cv2.Rectangle(img, new Point(left, top), new Point(left + plotW, top + plotH), Scalar.Black, 1);
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        // Ticks at round values, five or six of them.
        double tick = NiceStep(max / 6);
        for (int t = 0; t * tick <= max + 1e-9; t++)
        {
            double ms = t * tick;
            Cv2.PutText(img, ms.ToString("0.#", inv), new Point(X(ms) - 12, height - bottom + 18), HersheyFonts.HersheySimplex, 0.4, Scalar.Black);
        }
        for (int c = 1; c <= counts.Max(); c *= 10) Cv2.PutText(img, c.ToString(inv), new Point(8, Y(c) + 4), HersheyFonts.HersheySimplex, 0.4, Scalar.Black);
        Cv2.PutText(img, "capture to publish (ms)", new Point(width / 2 - 90, height - 12), HersheyFonts.HersheySimplex, 0.5, Scalar.Black);
        Cv2.PutText(img, "frames (log)", new Point(8, top - 10), HersheyFonts.HersheySimplex, 0.45, Scalar.Black);
        Cv2.PutText(img, title, new Point(left + 90, 24), HersheyFonts.HersheySimplex, 0.55, Scalar.Black);
        Scalar[] colours = [new(0, 160, 0), new(0, 140, 230), new(0, 0, 220)];
        double[] qs = [0.5, 0.95, 0.99];
        for (int k = 0; k < qs.Length; k++)
        {
            double v = sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(qs[k] * sorted.Length) - 1)];
            Cv2.Line(img, new Point(X(v), top), new Point(X(v), height - bottom), colours[k], 2);
            Cv2.PutText(img, $"p{qs[k] * 100:0} {v.ToString("0", inv)} ms", new Point(left + plotW - 170, top + 20 + 18 * k), HersheyFonts.HersheySimplex, 0.5, colours[k]);
        }
        return img;
    }
}
