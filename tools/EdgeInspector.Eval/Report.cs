using System.Globalization;
using System.Text.Json;
using EdgeInspector.Core.Evaluation;
using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Imaging;
using OpenCvSharp;

namespace EdgeInspector.Eval;

/// <summary>The metrics of one mode.</summary>
internal sealed record ModeMetrics(
    double ImageAuroc, double ImageAp, double ImageF1Max,
    double? PixelAuroc, double? PixelAp, double? PixelF1Max, double? Pro,
    double? CalibratedAuroc, double? MapMaxAuroc, List<RocPoint> Roc);

/// <summary>Turns mode runs into metrics, results.json, ROC curves, heatmaps and a table.</summary>
internal sealed class Report(string category, IReadOnlyList<FrameItem> frames, GroundTruth truth, EvalOptions options)
{
    private readonly List<(ModeRun Run, ModeMetrics Metrics)> _modes = [];
    // Untiled maps are --image-size square, and their masks are read once and held.
    private bool[][]? _smallMasks;

    private bool[] MaskOf(int i, int width, int height) =>
        options.Tiled ? truth.Of(i, width, height) : (_smallMasks ??= truth.All(options.ImageSize, options.ImageSize))[i];

    public void Add(ModeRun run) => _modes.Add((run, Compute(run)));

    private ModeMetrics Compute(ModeRun run)
    {
        var idx = Enumerable.Range(0, frames.Count).Where(i => run.Grids[i] is not null && !float.IsNaN(run.Image[i])).ToArray();
        var scores = idx.Select(i => run.Image[i]).ToArray();
        var labels = idx.Select(i => frames[i].Anomalous).ToArray();
        double? calibrated = run.Calibrated is { } cal ? Metrics.Auroc(idx.Select(i => cal[i]).ToArray(), labels) : null;
        // MuSc reports RsCIN's image score, a re-scoring against the batch that a line cannot use; its map's
        // maximum is the image score the engine takes, so the two compare like for like on it. (Tiled, MuSc's
        // image score is already the stitched map's maximum.)
        double? mapMax = run.Mode == "musc" && !options.Tiled
            ? Metrics.Auroc(idx.Select(i => run.Grids[i]!.Max()).ToArray(), labels)
            : null;
        double? pAuroc = null, pAp = null, pF1 = null, pro = null;
        // A defective frame without a mask has no pixel truth; the image metrics still count it.
        idx = idx.Where(i => !frames[i].LacksMask(truth.Any)).ToArray();
        if (truth.Any && options.Tiled)
        {
            // At the region's full resolution: too many pixels to hold, so counted a frame at a time. The
            // stitched maps blend the tiles' grids, so their range bounds every pixel.
            float min = float.PositiveInfinity, max = float.NegativeInfinity;
            foreach (int i in idx)
            {
                foreach (var grid in run.Tiles![i]!)
                {
                    foreach (float v in grid) { min = Math.Min(min, v); max = Math.Max(max, v); }
                }
            }
            var pixels = new PixelMetrics(min, max);
            foreach (int i in idx)
            {
                var (w, h) = MapSizeOf(run, i);
                var map = new float[w * h];
                MapOf(run, i, map, w, h);
                pixels.Add(map, MaskOf(i, w, h), w);
            }
            (pAuroc, pAp, pF1) = pixels.Summary;
            pro = pixels.Pro;
        }
        else if (truth.Any)
        {
            int w = options.ImageSize, h = options.ImageSize;
            var maps = new List<float[]>(idx.Length);
            var gts = new List<bool[]>(idx.Length);
            var flatScores = new float[(long)idx.Length * w * h];
            var flatLabels = new bool[flatScores.Length];
            for (int t = 0; t < idx.Length; t++)
            {
                var map = new float[w * h];
                MapOf(run, idx[t], map, w, h);
                maps.Add(map);
                var mask = MaskOf(idx[t], w, h);
                gts.Add(mask);
                map.CopyTo(flatScores, t * w * h);
                mask.CopyTo(flatLabels, t * w * h);
            }
            (pAuroc, pAp, pF1) = Metrics.Summary(flatScores, flatLabels);
            pro = Metrics.Pro(maps, gts, w);
        }
        var image = Metrics.Summary(scores, labels);
        return new ModeMetrics(image.Auroc, image.AveragePrecision, image.F1Max,
            pAuroc, pAp, pF1, pro, calibrated, mapMax, Metrics.RocCurve(scores, labels));
    }

    private static double Ms(TimeSpan t, int frames) => frames == 0 ? 0 : t.TotalMilliseconds / frames;

    /// <summary>Scoring per frame scored on arrival (updates included); the projection is part of the features.</summary>
    private static double? Steady(ModeRun run) => run.Times.SteadyFrames == 0
        ? null
        : Ms(run.Times.SteadyScoring, run.Times.SteadyFrames);

    public void WriteJson(string path)
    {
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("category", category);
        w.WriteNumber("frames", frames.Count);
        w.WriteNumber("seed", options.Seed);
        w.WriteNumber("batch", options.Engine.Batch);
        w.WriteString("engine", options.Engine.Fingerprint());
        w.WriteString("taps", string.Join(",", options.Taps));
        w.WriteNumber("image_size", options.ImageSize);
        // Defective frames of the lot left out of the pixel metrics: their category has masks, they have none.
        w.WriteNumber("frames_without_mask", frames.Count(f => f.LacksMask(truth.Any)));
        // How frames were cut: an untiled run is one tile over the whole image, its maps --image-size square.
        w.WriteStartObject("tiling");
        if (options.Roi is { } roi)
        {
            w.WriteStartArray("roi");
            foreach (int v in new[] { roi.X, roi.Y, roi.Width, roi.Height }) w.WriteNumberValue(v);
            w.WriteEndArray();
        }
        else w.WriteNull("roi");
        w.WriteNumber("cols", options.TileCols);
        w.WriteNumber("rows", options.TileRows);
        w.WriteNumber("overlap", options.TileOverlap);
        w.WriteString("refs", options.TileRefs);
        w.WriteNumber("tile_input", options.ImageSize);
        var (mapWidth, mapHeight) = _modes.Count > 0 ? MapSizeOf(_modes[0].Run, FirstScored(_modes[0].Run)) : (options.ImageSize, options.ImageSize);
        w.WriteNumber("map_width", mapWidth);
        w.WriteNumber("map_height", mapHeight);
        w.WriteEndObject();
        w.WriteStartObject("modes");
        foreach (var (run, m) in _modes)
        {
            w.WriteStartObject(run.Mode);
            w.WriteString("provider", run.Provider);
            w.WriteString("scoring", run.Scoring);
            w.WriteString("views", run.Views);
            Num(w, "image_auroc", m.ImageAuroc);
            Num(w, "image_ap", m.ImageAp);
            Num(w, "image_f1max", m.ImageF1Max);
            Num(w, "pixel_auroc", m.PixelAuroc);
            Num(w, "pixel_ap", m.PixelAp);
            Num(w, "pixel_f1max", m.PixelF1Max);
            Num(w, "pro", m.Pro);
            if (m.CalibratedAuroc is not null) Num(w, "image_auroc_calibrated", m.CalibratedAuroc);
            if (m.MapMaxAuroc is not null) Num(w, "image_auroc_map_max", m.MapMaxAuroc);
            w.WriteStartObject("ms_per_frame");
            Num(w, "preprocess", Ms(run.Times.Preprocess, run.Frames));
            Num(w, "backbone", Ms(run.Times.Backbone, run.Frames));
            Num(w, "features", Ms(run.Times.Features, run.Frames));
            Num(w, "scoring", Ms(run.Times.Scoring, run.Frames));
            Num(w, "total", Ms(run.Times.Total, run.Frames));
            if (run.Mode == "stream") Num(w, "scoring_steady", Steady(run));
            w.WriteEndObject();
            Num(w, "peak_rss_mb", run.PeakRssMb);
            w.WriteNumber("frames_scored", run.Frames);
            w.WriteNumber("frames_failed", run.Errors);
            if (run.Mode == "stream")
            {
                w.WriteNumber("reservoir_frames", run.ReservoirFrames);
                w.WriteNumber("quarantined", run.Quarantined);
            }
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void Num(Utf8JsonWriter w, string name, double? v)
    {
        if (v is null || double.IsNaN(v.Value) || double.IsInfinity(v.Value)) w.WriteNull(name);
        else w.WriteNumber(name, Math.Round(v.Value, 6));
    }

    public void WriteRoc(string dir)
    {
        foreach (var (run, m) in _modes)
        {
            using var img = PlotRenderer.Roc([(run.Mode, m.Roc.Select(p => (p.Fpr, p.Tpr)).ToList(), m.ImageAuroc)], $"{category}: image ROC, {run.Mode}");
            Cv2.ImWrite(Path.Combine(dir, $"roc_{run.Mode}.png"), img);
        }
        if (_modes.Count > 1)
        {
            using var img = PlotRenderer.Roc(_modes.Select(x => (x.Run.Mode, (IReadOnlyList<(double, double)>)x.Metrics.Roc.Select(p => (p.Fpr, p.Tpr)).ToList(), x.Metrics.ImageAuroc)).ToList(), $"{category}: image ROC");
            Cv2.ImWrite(Path.Combine(dir, "roc_all.png"), img);
        }
    }

    /// <summary>
    /// Raw per-frame results for offline analysis (--dump), little-endian: grids_&lt;mode&gt;.bin holds
    /// int32 frames, int32 grid length, then per frame in line order its image score and grid (NaN when
    /// unscored); frames.txt the frames' paths in line order; masks.bin holds int32 frames, int32 side,
    /// per frame an anomalous byte, then the masks (0/1).
    /// </summary>
    public void WriteDump(string dir)
    {
        foreach (var (run, _) in _modes)
        {
            int g = run.Grids.FirstOrDefault(x => x is not null)?.Length ?? 0;
            using var w = new BinaryWriter(File.Create(Path.Combine(dir, $"grids_{run.Mode}.bin")));
            w.Write(frames.Count);
            w.Write(g);
            for (int i = 0; i < frames.Count; i++)
            {
                w.Write(run.Image[i]);
                var grid = run.Grids[i];
                for (int k = 0; k < g; k++) w.Write(grid is null ? float.NaN : grid[k]);
            }
        }
        File.WriteAllLines(Path.Combine(dir, "frames.txt"), frames.Select(f => f.Path));
        using var m = new BinaryWriter(File.Create(Path.Combine(dir, "masks.bin")));
        int side = options.ImageSize;
        m.Write(frames.Count);
        m.Write(truth.Any ? side : 0);
        foreach (var f in frames) m.Write(f.Anomalous ? (byte)1 : (byte)0);
        for (int i = 0; truth.Any && i < frames.Count; i++)
        {
            var mask = MaskOf(i, side, side);
            for (int k = 0; k < side * side; k++) m.Write(mask[k] ? (byte)1 : (byte)0);
        }
    }

    /// <summary>The three worst false positives (good frames scored highest) and false negatives (defects scored lowest) per mode.</summary>
    public void WriteHeatmaps(string dir, int count = 3)
    {
        foreach (var (run, _) in _modes)
        {
            var scored = Enumerable.Range(0, frames.Count).Where(i => run.Grids[i] is not null && !float.IsNaN(run.Image[i])).ToList();
            if (scored.Count == 0) continue;
            var all = scored.SelectMany(i => run.Grids[i]!).ToArray();
            float low = Stats.Quantile(all, 0.5), high = Stats.SortedQuantile(all, 0.999);
            var fps = scored.Where(i => !frames[i].Anomalous).OrderByDescending(i => run.Image[i]).Take(count);
            var fns = scored.Where(i => frames[i].Anomalous).OrderBy(i => run.Image[i]).Take(count);
            int rank = 0;
            foreach (int i in fps) Write(dir, run, i, $"{run.Mode}_false_positive_{++rank}.png", "FP", low, high);
            rank = 0;
            foreach (int i in fns) Write(dir, run, i, $"{run.Mode}_false_negative_{++rank}.png", "FN", low, high);
        }
    }

    /// <summary>
    /// Frame <paramref name="i"/>'s map size: --image-size square untiled (as MuSc scores pixels), or the
    /// region of interest at full resolution when tiling.
    /// </summary>
    private (int Width, int Height) MapSizeOf(ModeRun run, int i) =>
        run.Geometry?[i] is { } g ? (g.RoiWidth, g.RoiHeight) : (options.ImageSize, options.ImageSize);

    private static int FirstScored(ModeRun run) => Math.Max(0, Array.FindIndex(run.Grids, g => g is not null));

    /// <summary>A frame's map at <paramref name="w"/> × <paramref name="h"/>: its patch grid upsampled, or its tiles' grids stitched over the region.</summary>
    private static void MapOf(ModeRun run, int i, Span<float> map, int w, int h)
    {
        if (run.Tiles is { } tiles)
        {
            TileStitcher.Stitch(run.Geometry![i]!, tiles[i]!, run.TileGridHeight, run.TileGridWidth, map, w, h);
            return;
        }
        int g = run.Grids[i]!.Length, gh = (int)Math.Sqrt(g);
        AnomalyMap.Upsample(run.Grids[i], gh, g / gh, map, h, w);
    }

    private void Write(string dir, ModeRun run, int i, string file, string kind, float low, float high)
    {
        var (w, h) = MapSizeOf(run, i);
        var map = new float[w * h];
        MapOf(run, i, map, w, h);
        using var decoded = ImagePreprocessor.Decode(frames[i].Path);
        var roi = options.Roi ?? new PixelRect(0, 0, decoded.Width, decoded.Height);
        using var img = new Mat(decoded, new Rect(roi.X, roi.Y, roi.Width, roi.Height));
        ReadOnlySpan<bool> mask = truth.Any ? MaskOf(i, w, h) : default;
        string caption = $"{kind} {frames[i].Name} score {run.Image[i].ToString("0.000", CultureInfo.InvariantCulture)}";
        using var overlay = HeatmapRenderer.Overlay(img, map, w, h, low, high, mask, caption);
        Cv2.ImWrite(Path.Combine(dir, file), overlay);
    }

    public void PrintTable(TextWriter log)
    {
        static string F(double? v) => v is null || double.IsNaN(v.Value) ? "   -  " : (100 * v.Value).ToString("0.0", CultureInfo.InvariantCulture).PadLeft(6);
        log.WriteLine();
        log.WriteLine($"{category}: {frames.Count} frames, batch {options.Engine.Batch}, seed {options.Seed}");
        log.WriteLine("mode    | img AUROC  AP     F1max | pix AUROC  AP     F1max  PRO    | ms/frame: prep  backbone features scoring  total | peak MB");
        foreach (var (run, m) in _modes)
        {
            var t = run.Times;
            int n = run.Frames;
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{run.Mode,-7} | {F(m.ImageAuroc)} {F(m.ImageAp)} {F(m.ImageF1Max)} | {F(m.PixelAuroc)} {F(m.PixelAp)} {F(m.PixelF1Max)} {F(m.Pro)} | {Ms(t.Preprocess, n),8:0.0} {Ms(t.Backbone, n),8:0.0} {Ms(t.Features, n),8:0.0} {Ms(t.Scoring, n),8:0.0} {Ms(t.Total, n),7:0.0} | {run.PeakRssMb,7:0}"));
        }
        foreach (var (run, _) in _modes)
        {
            if (run.Mode == "stream" && run.Times.SteadyFrames > 0)
            {
                log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stream steady state: {Steady(run):0.0} ms/frame scoring over {run.Times.SteadyFrames} frames scored on arrival (the rest: the warm-up batch)"));
            }
        }
        foreach (var (run, m) in _modes)
        {
            if (m.MapMaxAuroc is { } mapMax)
            {
                log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"musc image AUROC by its map's maximum (the engine's image score, without RsCIN): {100 * mapMax:0.0}"));
            }
        }
        var musc = _modes.FirstOrDefault(x => x.Run.Mode == "musc").Run;
        foreach (var (run, _) in _modes)
        {
            if (musc is null || run == musc || run.Times.Scoring.TotalMilliseconds <= 0) continue;
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"scoring speed-up {run.Mode} vs musc: {Ms(musc.Times.Scoring, musc.Frames) / Ms(run.Times.Scoring, run.Frames):0.0}x"));
        }
    }
}
