using System.Diagnostics;
using EdgeInspector.Core.Evaluation;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Imaging;
using EdgeInspector.Inference.Onnx;
using OpenCvSharp;

namespace EdgeInspector.Eval;

/// <summary>Per-stage time spent, summed over frames.</summary>
internal sealed class StageTimes
{
    public TimeSpan Preprocess, Backbone, Features, Scoring, Total;

    /// <summary>Streaming only: scoring time of frames scored on arrival, after the warm-up batch.</summary>
    public TimeSpan SteadyScoring;

    /// <summary>Projection of the views before scoring (already inside <see cref="Scoring"/>).</summary>
    public TimeSpan Projection;

    public int SteadyFrames;
}

/// <summary>What one mode produced for every frame of the line order.</summary>
internal sealed class ModeRun
{
    public required string Mode { get; init; }
    public required float[]?[] Grids { get; init; }
    public required float[] Image { get; init; }
    public float[]? Calibrated { get; init; }
    public StageTimes Times { get; } = new();
    public int Frames;
    public int Errors;
    public double PeakRssMb;
    public int ReservoirFrames;
    public long Quarantined;
}

/// <summary>Runs the modes over a category and writes results.json, ROC curves and heatmaps.</summary>
internal sealed class Evaluator(EvalOptions options, TextWriter log)
{
    private readonly Progress _progress = new(options.Quiet);

    public int Run()
    {
        var dataset = Dataset.Load(options.Category);
        var frames = Dataset.LineOrder(dataset.Frames, options.Seed, options.Limit);
        string model = ModelLocator.Find(string.IsNullOrEmpty(options.Model) ? "resnet50v2_features.onnx" : options.Model);
        Directory.CreateDirectory(options.Out);

        var backboneOptions = new BackboneOptions
        {
            ModelPath = model,
            InputWidth = options.ImageSize,
            InputHeight = options.ImageSize,
            Taps = options.Taps,
            Degrees = options.Degrees,
            ExecutionProviders = ["cpu"],
        };
        using var backbone = new OnnxBackbone(backboneOptions, new ConsoleLogger(log));
        log.WriteLine($"{dataset.Name}: {frames.Count} frames ({frames.Count(f => f.Anomalous)} anomalous), line order seed {options.Seed}; " +
                      $"backbone {Path.GetFileName(model)} on {backbone.ExecutionProvider}, grid {backbone.Layout.GridHeight}x{backbone.Layout.GridWidth}, " +
                      $"views [{string.Join(", ", backbone.Layout.Views)}]");

        bool[]?[] masks = dataset.HasMasks ? LoadMasks(frames, options.ImageSize) : [];
        var runs = new List<ModeRun>();
        foreach (string mode in options.Modes)
        {
            var run = RunMode(mode, frames, dataset, backbone);
            runs.Add(run);
        }

        var report = new Report(dataset.Name, frames, masks, options);
        foreach (var run in runs) report.Add(run);
        report.WriteJson(Path.Combine(options.Out, "results.json"));
        report.WriteRoc(options.Out);
        report.WriteHeatmaps(options.Out);
        if (options.Dump) report.WriteDump(options.Out);
        report.PrintTable(log);
        return 0;
    }

    private static bool[]?[] LoadMasks(IReadOnlyList<FrameItem> frames, int size)
    {
        var masks = new bool[]?[frames.Count];
        Parallel.For(0, frames.Count, i =>
        {
            var m = new bool[size * size];
            if (frames[i].MaskPath is { } path)
            {
                using var raw = Cv2.ImRead(path, ImreadModes.Grayscale);
                if (raw.Empty()) throw new ImageDecodeException($"{path}: mask is not a decodable image.");
                using var small = new Mat();
                Cv2.Resize(raw, small, new Size(size, size), 0, 0, InterpolationFlags.Nearest);
                for (int y = 0; y < size; y++)
                {
                    for (int x = 0; x < size; x++) m[y * size + x] = small.At<byte>(y, x) > 127;
                }
            }
            masks[i] = m;
        });
        return masks;
    }

    private ModeRun RunMode(string mode, IReadOnlyList<FrameItem> frames, Dataset dataset, OnnxBackbone backbone)
    {
        int n = frames.Count;
        // The FSLC modes may score in a projected space; MuSc always runs on the full views.
        _projector = mode != "musc" && options.Engine.ScoreDims > 0 ? new ViewProjector(backbone.Layout, options.Engine.ScoreDims, ViewProjector.DefaultSeed) : null;
        var layout = _projector?.Target ?? backbone.Layout;
        var run = new ModeRun { Mode = mode, Grids = new float[]?[n], Image = new float[n], Calibrated = mode == "stream" ? new float[n] : null };
        run.Image.AsSpan().Fill(float.NaN);
        // The yardsticks stay at their own settings whatever the engine's are (MuSc's image score is its
        // map's maximum, re-scored by RsCIN); only the batch is shared.
        var fslcOptions = new FslcOptions();
        var musc = new MuScScorer(new MuScOptions());
        var fslc = new Fslc(layout, fslcOptions);
        _pool = new FrameFeaturesPool(layout);
        _rawPool = _projector is null ? _pool : new FrameFeaturesPool(backbone.Layout);
        var stream = new ReservoirEngine(layout, options.Engine, _pool.Return);
        var pre = new ImagePreprocessor(options.ImageSize, options.ImageSize, rgb: true, backbone.Options.Mean, backbone.Options.Std);

        PeakMemory.Reset();
        var total = Stopwatch.StartNew();
        if (mode == "stream" && options.Refs > 0)
        {
            var goods = dataset.KnownGood.Take(options.Refs).ToList();
            if (goods.Count < options.Refs) log.WriteLine($"warning: --refs {options.Refs} asked, train/good holds {goods.Count}.");
            var refFeatures = Extract(goods, backbone, pre, run.Times, out _);
            var sw = Stopwatch.StartNew();
            var goodFeatures = refFeatures.OfType<FrameFeatures>().ToList();
            stream.SeedKnownGood(goodFeatures);
            run.Times.Scoring += sw.Elapsed;
            foreach (var f in goodFeatures) _pool.Return(f);
        }

        // Batches for musc/fslc: the line order split into nearly equal consecutive groups of about --batch frames.
        int groups = Math.Max(1, (int)Math.Round((double)n / options.Engine.Batch));
        var groupEnd = new int[groups];
        for (int g = 0; g < groups; g++) groupEnd[g] = (int)((long)(g + 1) * n / groups);
        var pending = new List<(int Index, FrameFeatures Features)>();
        int group = 0;

        _progress.Start(mode, n);
        for (int start = 0; start < n; start += options.InferBatch)
        {
            int count = Math.Min(options.InferBatch, n - start);
            var chunk = frames.Skip(start).Take(count).Select(f => f.Path).ToList();
            var features = Extract(chunk, backbone, pre, run.Times, out int errors);
            run.Errors += errors;
            var sw = Stopwatch.StartNew();
            for (int c = 0; c < count; c++)
            {
                int index = start + c;
                if (features[c] is { } f)
                {
                    if (mode == "stream")
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        var results = stream.Push(f, index);
                        if (results.Count == 1 && !results[0].WarmUp)
                        {
                            run.Times.SteadyScoring += Stopwatch.GetElapsedTime(t0);
                            run.Times.SteadyFrames++;
                        }
                        foreach (var r in results) Store(run, r);
                    }
                    else
                    {
                        pending.Add((index, f));
                    }
                }
                if (mode != "stream" && index + 1 == groupEnd[group])
                {
                    ScoreGroup(mode, pending, run, musc, fslc);
                    foreach (var (_, done) in pending) _pool.Return(done);
                    pending.Clear();
                    group++;
                }
            }
            run.Times.Scoring += sw.Elapsed;
            _progress.Report(start + count);
        }
        if (mode == "stream")
        {
            var sw = Stopwatch.StartNew();
            foreach (var r in stream.Flush()) Store(run, r);
            run.Times.Scoring += sw.Elapsed;
            run.ReservoirFrames = stream.Reservoir.Count;
            run.Quarantined = stream.Quarantined;
        }
        total.Stop();
        run.Times.Total = total.Elapsed;
        run.PeakRssMb = PeakMemory.PeakMb();
        run.Frames = n - run.Errors;
        _progress.Done();
        if (mode == "stream")
        {
            log.WriteLine($"stream: reservoir {stream.Reservoir.Count} frames of {stream.Reservoir.Keep} patches, {stream.Quarantined} frames quarantined");
        }
        return run;
    }

    private static void Store(ModeRun run, StreamResult r)
    {
        int i = (int)r.FrameId;
        run.Grids[i] = r.Patches;
        run.Image[i] = r.Image;
        run.Calibrated![i] = r.Calibrated;
    }

    private void ScoreGroup(string mode, List<(int Index, FrameFeatures Features)> pending, ModeRun run, MuScScorer musc, Fslc fslc)
    {
        if (pending.Count < 2)
        {
            if (pending.Count == 1) log.WriteLine($"warning: a batch of one frame cannot be scored ({mode}); frame {pending[0].Index} left unscored.");
            return;
        }
        var batch = pending.Select(p => p.Features).ToList();
        if (mode == "musc")
        {
            var r = musc.Score(batch);
            for (int i = 0; i < batch.Count; i++)
            {
                run.Grids[pending[i].Index] = r.Patches[i];
                run.Image[pending[i].Index] = r.ImageRsCin[i];
            }
        }
        else
        {
            var (scores, _) = fslc.ScoreBatch(batch);
            for (int i = 0; i < batch.Count; i++)
            {
                run.Grids[pending[i].Index] = scores[i].Patches;
                run.Image[pending[i].Index] = scores[i].Image;
            }
        }
    }

    private float[]? _tensor;
    private FrameFeaturesPool? _pool;
    private FrameFeaturesPool? _rawPool;
    private ViewProjector? _projector;

    /// <summary>Decodes, preprocesses and runs the backbone; a frame that cannot be decoded is reported and left null.</summary>
    private FrameFeatures?[] Extract(IReadOnlyList<string> paths, OnnxBackbone backbone, ImagePreprocessor pre, StageTimes times, out int errors)
    {
        int size = backbone.ImageSize;
        if (_tensor is null || _tensor.Length < paths.Count * size) _tensor = new float[Math.Max(paths.Count, options.InferBatch) * size];
        var ok = new bool[paths.Count];
        var messages = new string?[paths.Count];
        var sw = Stopwatch.StartNew();
        var tensor = _tensor;
        // Good frames are packed to the front of the tensor in order.
        var slotOf = new int[paths.Count];
        Parallel.For(0, paths.Count, i =>
        {
            try
            {
                using var img = ImagePreprocessor.Decode(paths[i]);
                pre.Write(img, tensor.AsSpan(i * size, size));
                ok[i] = true;
            }
            catch (ImageDecodeException e)
            {
                messages[i] = e.Message;
            }
        });
        int good = 0;
        for (int i = 0; i < paths.Count; i++)
        {
            if (!ok[i]) continue;
            if (good != i) tensor.AsSpan(i * size, size).CopyTo(tensor.AsSpan(good * size, size));
            slotOf[i] = good++;
        }
        times.Preprocess += sw.Elapsed;
        errors = paths.Count - good;
        foreach (string? m in messages)
        {
            if (m is not null) log.WriteLine($"error: frame skipped: {m}");
        }
        var outputs = new FrameFeatures[good];
        for (int i = 0; i < good; i++) outputs[i] = _rawPool!.Rent();
        if (good > 0)
        {
            var (b, f) = backbone.Extract(tensor, good, outputs);
            times.Backbone += b;
            times.Features += f;
        }
        if (_projector is { } projector)
        {
            // Projection counts as scoring work: it exists only to make scoring cheaper.
            var ps = Stopwatch.StartNew();
            var projected = new FrameFeatures[good];
            Parallel.For(0, good, i =>
            {
                projected[i] = _pool!.Rent();
                projector.Project(outputs[i], projected[i]);
                _rawPool!.Return(outputs[i]);
            });
            outputs = projected;
            times.Scoring += ps.Elapsed;
            times.Projection += ps.Elapsed;
        }
        var result = new FrameFeatures?[paths.Count];
        for (int i = 0; i < paths.Count; i++) result[i] = ok[i] ? outputs[slotOf[i]] : null;
        return result;
    }
}

/// <summary>Peak resident memory of this process, resettable between modes (Linux /proc).</summary>
internal static class PeakMemory
{
    public static void Reset()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not Linux or not permitted: the peak then covers the whole process so far.
        }
    }

    public static double PeakMb()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return double.Parse(line[6..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
                }
            }
        }
        catch (IOException)
        {
        }
        return Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0);
    }
}

/// <summary>A progress bar on stderr (a line per 10% when stderr is not a terminal).</summary>
internal sealed class Progress(bool quiet)
{
    private string _label = "";
    private int _total, _lastDecile = -1;
    private Stopwatch _sw = new();

    public void Start(string label, int total)
    {
        _label = label;
        _total = Math.Max(1, total);
        _lastDecile = -1;
        _sw = Stopwatch.StartNew();
    }

    public void Report(int done)
    {
        if (quiet) return;
        double fps = done / Math.Max(1e-9, _sw.Elapsed.TotalSeconds);
        double eta = (_total - done) / Math.Max(fps, 1e-9);
        int width = 30, filled = (int)((long)width * done / _total);
        string line = $"{_label,-6} [{new string('#', filled)}{new string('-', width - filled)}] {done}/{_total} frames  {fps:0.0} fps  eta {eta:0}s";
        if (!Console.IsErrorRedirected) Console.Error.Write("\r" + line);
        else
        {
            int decile = 10 * done / _total;
            if (decile != _lastDecile)
            {
                _lastDecile = decile;
                Console.Error.WriteLine(line);
            }
        }
    }

    public void Done()
    {
        if (!quiet && !Console.IsErrorRedirected) Console.Error.WriteLine();
    }
}

/// <summary>Minimal ILogger to the CLI's log writer.</summary>
internal sealed class ConsoleLogger(TextWriter writer) : Microsoft.Extensions.Logging.ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Information;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel)) writer.WriteLine($"{logLevel.ToString().ToLowerInvariant()}: {formatter(state, exception)}");
    }
}
