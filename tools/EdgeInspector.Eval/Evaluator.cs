using System.Diagnostics;
using EdgeInspector.Core.Evaluation;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Imaging;
using EdgeInspector.Inference.Onnx;
using OpenCvSharp;

namespace EdgeInspector.Eval;

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

        var truth = new GroundTruth(frames, options.Roi, dataset.HasMasks);
        if (options.Tiled)
        {
            log.WriteLine($"tiling: {(options.Roi is { } roi ? $"roi {roi}" : "the whole image")} in {options.TileCols}x{options.TileRows} tiles, overlap {options.TileOverlap.ToString(System.Globalization.CultureInfo.InvariantCulture)}, " +
                          $"each at {options.ImageSize}x{options.ImageSize}, references by {options.TileRefs}; pixel metrics at the region's full resolution");
        }
        var runs = new List<ModeRun>();
        foreach (string mode in options.Modes)
        {
            var run = RunMode(mode, frames, dataset, backbone);
            runs.Add(run);
        }

        var report = new Report(dataset.Name, frames, truth, options);
        foreach (var run in runs) report.Add(run);
        report.WriteJson(Path.Combine(options.Out, "results.json"));
        report.WriteRoc(options.Out);
        report.WriteHeatmaps(options.Out);
        if (options.Dump) report.WriteDump(options.Out);
        report.PrintTable(log);
        return 0;
    }

    private ModeRun RunMode(string mode, IReadOnlyList<FrameItem> frames, Dataset dataset, OnnxBackbone backbone)
    {
        int n = frames.Count, tiles = options.TileCount;
        bool tiled = options.Tiled, pooled = tiled && options.TileRefs == "pooled";
        // The FSLC modes may score in a projected space; MuSc always runs on the full views.
        _projector = mode != "musc" && options.Engine.ScoreDims > 0 ? new ViewProjector(backbone.Layout, options.Engine.ScoreDims, ViewProjector.DefaultSeed) : null;
        var layout = _projector?.Target ?? backbone.Layout;
        var run = new ModeRun
        {
            Mode = mode, Provider = backbone.ExecutionProvider, Grids = new float[]?[n], Image = new float[n], Calibrated = mode == "stream" ? new float[n] : null,
            Tiles = tiled ? new float[n][][] : null, Geometry = tiled ? new TileGrid?[n] : null,
            TileGridHeight = layout.GridHeight, TileGridWidth = layout.GridWidth,
        };
        run.Image.AsSpan().Fill(float.NaN);
        // The yardsticks stay at their own settings whatever the engine's are (MuSc's image score is its
        // map's maximum, re-scored by RsCIN); only the batch is shared.
        var fslcOptions = new FslcOptions();
        var musc = new MuScScorer(new MuScOptions());
        var fslc = new Fslc(layout, fslcOptions);
        _pool = FrameFeaturesPool.ForCalls(layout, Math.Max(options.InferBatch, tiles));
        // The line's engine, as the service builds it: one tile (its result is the plain engine's, exactly)
        // unless tiled, then position-aware or pooled.
        // Its scoring on the graphs when asked (or by auto on a GPU provider); MuSc and FSLC stay managed.
        using var scoring = mode == "stream" && ScoringPath.Scoring(options.Scoring, backbone.ExecutionProvider) == ScoringPath.Onnx
            ? new OnnxScoring(backbone.ExecutionProvider, backbone.Options) : null;
        using var stream = new TiledEngine(layout, options.Engine, tiles, pooled, _pool.Return, scoring is null ? null : scoring.Create);
        if (mode == "stream") run.Scoring = stream.ScoringPath;
        // The yardsticks build their views as managed code; the engine as --scoring says.
        _viewsOnGraph = mode == "stream" && ScoringPath.ViewsOnGraph(options.Scoring);
        run.Views = _viewsOnGraph ? ScoringPath.Onnx : ScoringPath.Managed;
        var whole = TileGrid.Whole(layout.GridWidth, layout.GridHeight);
        var pre = new ImagePreprocessor(options.ImageSize, options.ImageSize, rgb: true, backbone.Options.Mean, backbone.Options.Std);

        PeakMemory.Reset();
        var total = Stopwatch.StartNew();
        if (mode == "stream" && options.Refs > 0)
        {
            var goods = dataset.KnownGood.Take(options.Refs).ToList();
            if (goods.Count < options.Refs) log.WriteLine($"warning: --refs {options.Refs} asked, train/good holds {goods.Count}.");
            var refFeatures = Extract(goods, backbone, pre, run.Times, out _).OfType<FrameFeatures[]>().ToList();
            var sw = Stopwatch.StartNew();
            stream.SeedKnownGood(refFeatures);
            run.Times.Scoring += sw.Elapsed;
            foreach (var f in refFeatures.SelectMany(f => f)) _pool.Return(f);
        }

        // Batches for musc/fslc: the line order split into nearly equal consecutive groups of about --batch frames.
        int groups = Math.Max(1, (int)Math.Round((double)n / options.Engine.Batch));
        var groupEnd = new int[groups];
        for (int g = 0; g < groups; g++) groupEnd[g] = (int)((long)(g + 1) * n / groups);
        var pending = new List<(int Index, FrameFeatures[] Features)>();
        int group = 0;
        // All tiles of a frame go through the backbone together: as many frames per run as keep the batch near --infer-batch images.
        int framesPerRun = Math.Max(1, options.InferBatch / tiles);

        _progress.Start(mode, n);
        for (int start = 0; start < n; start += framesPerRun)
        {
            int count = Math.Min(framesPerRun, n - start);
            var chunk = frames.Skip(start).Take(count).Select(f => f.Path).ToList();
            var geometry = new TileGrid?[count];
            var features = Extract(chunk, backbone, pre, run.Times, out int errors, geometry);
            run.Errors += errors;
            var sw = Stopwatch.StartNew();
            for (int c = 0; c < count; c++)
            {
                int index = start + c;
                if (features[c] is { } f)
                {
                    if (tiled) run.Geometry![index] = geometry[c];
                    if (mode == "stream")
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        var results = stream.Push(f, geometry[c] ?? whole, index);
                        foreach (var r in results) Store(run, r);
                        if (results.Count == 1 && !results[0].WarmUp)
                        {
                            run.Times.SteadyScoring += Stopwatch.GetElapsedTime(t0);
                            run.Times.SteadyFrames++;
                        }
                    }
                    else
                    {
                        pending.Add((index, f));
                    }
                }
                if (mode != "stream" && index + 1 == groupEnd[group])
                {
                    ScoreGroup(mode, pending, run, musc, fslc);
                    foreach (var (_, done) in pending) foreach (var d in done) _pool.Return(d);
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
            var engines = stream.Engines;
            run.ReservoirFrames = engines.Sum(e => e.Reservoir.Count);
            run.Quarantined = engines.Sum(e => e.Quarantined);
            if (options.ExportGraphs is { } exportDir) ExportGraphs(exportDir, frames, backbone, pre, engines[0]);
        }
        total.Stop();
        run.Times.Total = total.Elapsed;
        run.PeakRssMb = PeakMemory.PeakMb();
        run.Frames = n - run.Errors;
        _progress.Done();
        if (mode == "stream")
        {
            var engines = stream.Engines;
            string what = engines.Count > 1 ? $"{engines.Count} tile positions' reservoirs, {run.ReservoirFrames} tiles in all" : $"reservoir {run.ReservoirFrames} {(pooled ? "tiles" : "frames")}";
            log.WriteLine($"stream: {what} of {engines[0].Reservoir.Keep} patches, {run.Quarantined} {(tiled ? "tiles" : "frames")} quarantined");
        }
        return run;
    }

    /// <summary>The first frames of the line (their first tile), scored against the first engine's reservoir, exported for the device check.</summary>
    private void ExportGraphs(string dir, IReadOnlyList<FrameItem> frames, OnnxBackbone backbone, ImagePreprocessor pre, ReservoirEngine engine)
    {
        var paths = frames.Take(GraphExport.Frames).Select(f => f.Path).ToList();
        var features = Extract(paths, backbone, pre, new StageTimes(), out _);
        var named = new List<(string, FrameFeatures)>();
        for (int i = 0; i < paths.Count; i++)
        {
            if (features[i] is { } tiles) named.Add((Path.GetRelativePath(options.Category, paths[i]), tiles[0]));
        }
        GraphExport.Write(dir, engine, named, backbone.Options, ExportViews(backbone, named.Select(n => n.Item2).Take(GraphExport.ViewFrames).ToList()), log);
        foreach (var tiles in features) foreach (var f in tiles ?? []) _pool!.Return(f);
    }

    /// <summary>
    /// The views graph's export: the taps of the first good frames (their first tile), still in the batch tensor
    /// that <see cref="Extract"/> packed them into, the views this run built from them, and how far the managed
    /// twin (<see cref="ViewBuilder"/>) is from those.
    /// </summary>
    private ViewsExport ExportViews(OnnxBackbone backbone, IReadOnlyList<FrameFeatures> expected)
    {
        int f = expected.Count, tiles = options.TileCount, taps = backbone.Options.Taps.Length;
        var all = backbone.Taps(_tensor!, f * tiles);
        var shapes = new List<(string, int, int, int)>();
        var data = new float[taps][];
        for (int t = 0; t < taps; t++)
        {
            var (c, h, w) = backbone.TapShape(t);
            shapes.Add((backbone.Options.Taps[t], c, h, w));
            int size = c * h * w;
            data[t] = new float[f * size];
            for (int i = 0; i < f; i++) all[t].AsSpan(i * tiles * size, size).CopyTo(data[t].AsSpan(i * size));
        }
        var twins = new FrameFeatures[f];
        for (int i = 0; i < f; i++) twins[i] = new FrameFeatures(expected[i].Layout);
        backbone.BuildViews(data, f, twins, _projector);
        double worst = 0;
        for (int i = 0; i < f; i++)
            for (int v = 0; v < twins[i].Views.Length; v++)
                for (int j = 0; j < twins[i].Views[v].Length; j++) worst = Math.Max(worst, Math.Abs(twins[i].Views[v][j] - expected[i].Views[v][j]));
        string globalTap = backbone.Options.GlobalTap ?? backbone.Options.Taps[^1];
        string from = _viewsOnGraph ? "the views graph on ONNX Runtime's CPU provider (the .NET eval)" : "the managed ViewBuilder (the .NET eval)";
        return new ViewsExport(backbone.ViewsModel(_projector), backbone.Layout.Views, globalTap, shapes, data, expected, from, worst);
    }

    /// <summary>One frame's engine result: its patch grid (stitched over the region when tiled, with the tiles' own grids kept) and its scores.</summary>
    private static void Store(ModeRun run, TiledResult r)
    {
        int i = (int)r.FrameId;
        if (run.Tiles is not null) run.Tiles[i] = r.TilePatches;
        run.Grids[i] = r.Patches;
        run.Image[i] = r.Image;
        run.Calibrated![i] = r.Calibrated;
    }

    /// <summary>Keeps a tiled frame's tile grids and its stitched patch grid (the region at patch resolution).</summary>
    private float[] Stitched(ModeRun run, int frame, float[][] grids)
    {
        run.Tiles![frame] = grids;
        var geometry = run.Geometry![frame]!;
        var (gh, gw) = TiledEngine.StitchedGrid(run.TileGridHeight, run.TileGridWidth, geometry);
        var stitched = new float[gw * gh];
        TileStitcher.Stitch(geometry, grids, run.TileGridHeight, run.TileGridWidth, stitched, gw, gh);
        run.Grids[frame] = stitched;
        return stitched;
    }

    private void ScoreGroup(string mode, List<(int Index, FrameFeatures[] Features)> pending, ModeRun run, MuScScorer musc, Fslc fslc)
    {
        if (pending.Count < 2)
        {
            if (pending.Count == 1) log.WriteLine($"warning: a batch of one frame cannot be scored ({mode}); frame {pending[0].Index} left unscored.");
            return;
        }
        int tiles = pending[0].Features.Length;
        // Per scoring batch: the frames' tiles it holds, as (frame in pending, tile).
        // The yardsticks are position-aware: tile (i,j) against tile (i,j) of the batch's other frames. (Pooled,
        // a frame's own overlapping tiles would vouch for each other: MuSc excludes only the image itself.)
        var batches = new List<List<(int Frame, int Tile)>>();
        for (int t = 0; t < tiles; t++) batches.Add([.. Enumerable.Range(0, pending.Count).Select(i => (i, t))]);
        var patches = new float[pending.Count][][];
        var images = new float[pending.Count][];
        for (int i = 0; i < pending.Count; i++) (patches[i], images[i]) = (new float[tiles][], new float[tiles]);
        foreach (var members in batches)
        {
            var batch = members.Select(m => pending[m.Frame].Features[m.Tile]).ToList();
            if (mode == "musc")
            {
                var r = musc.Score(batch);
                for (int k = 0; k < batch.Count; k++)
                {
                    patches[members[k].Frame][members[k].Tile] = r.Patches[k];
                    images[members[k].Frame][members[k].Tile] = r.ImageRsCin[k];
                }
            }
            else
            {
                var (scores, _) = fslc.ScoreBatch(batch);
                for (int k = 0; k < batch.Count; k++)
                {
                    patches[members[k].Frame][members[k].Tile] = scores[k].Patches;
                    images[members[k].Frame][members[k].Tile] = scores[k].Image;
                }
            }
        }
        for (int i = 0; i < pending.Count; i++)
        {
            int index = pending[i].Index;
            if (!options.Tiled)
            {
                run.Grids[index] = patches[i][0];
                run.Image[index] = images[i][0];
                continue;
            }
            var stitched = Stitched(run, index, patches[i]);
            // MuSc's image score is its map's maximum: over the whole region (RsCIN's re-scoring needs one
            // global feature per frame, which a set of tiles does not have). FSLC's: its worst tile's.
            run.Image[index] = mode == "musc" ? stitched.Max() : images[i].Max();
        }
    }

    private float[]? _tensor;
    private FrameFeaturesPool? _pool;
    private ViewProjector? _projector;
    private bool _viewsOnGraph;

    /// <summary>
    /// Decodes, cuts out the region of interest and its tiles, preprocesses and runs the backbone on every
    /// tile of every frame as one batch; returns each frame's tiles' features (one when not tiling) and the
    /// tiles' geometry. A frame that cannot be decoded or cut is reported and left null.
    /// </summary>
    private FrameFeatures[]?[] Extract(IReadOnlyList<string> paths, OnnxBackbone backbone, ImagePreprocessor pre, StageTimes times, out int errors, TileGrid?[]? geometry = null)
    {
        int size = backbone.ImageSize, tiles = options.TileCount;
        int slots = paths.Count * tiles;
        if (_tensor is null || _tensor.Length < slots * size) _tensor = new float[Math.Max(slots, options.InferBatch) * size];
        var ok = new bool[paths.Count];
        var messages = new string?[paths.Count];
        var sw = Stopwatch.StartNew();
        var tensor = _tensor;
        // Good frames are packed to the front of the tensor in order, each as its run of tiles.
        var slotOf = new int[paths.Count];
        Parallel.For(0, paths.Count, i =>
        {
            try
            {
                using var img = ImagePreprocessor.Decode(paths[i]);
                if (!options.Tiled)
                {
                    pre.Write(img, tensor.AsSpan(i * size, size));
                }
                else
                {
                    var grid = Cut(img, paths[i], options.ImageSize);
                    pre.WriteTiles(img, options.Roi ?? new PixelRect(0, 0, img.Width, img.Height), grid, tensor.AsSpan(i * tiles * size, tiles * size));
                    if (geometry is not null) geometry[i] = grid;
                }
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
            if (good != i) tensor.AsSpan(i * tiles * size, tiles * size).CopyTo(tensor.AsSpan(good * tiles * size, tiles * size));
            slotOf[i] = good++;
        }
        times.Preprocess += sw.Elapsed;
        errors = paths.Count - good;
        foreach (string? m in messages)
        {
            if (m is not null) log.WriteLine($"error: frame skipped: {m}");
        }
        int images = good * tiles;
        var outputs = new FrameFeatures[images];
        for (int i = 0; i < images; i++) outputs[i] = _pool!.Rent();
        if (images > 0)
        {
            // With a projector the views come out projected: the projection is part of building them.
            var (b, f) = backbone.Extract(tensor, images, outputs, _projector, _viewsOnGraph);
            times.Backbone += b;
            times.Features += f;
        }
        var result = new FrameFeatures[]?[paths.Count];
        for (int i = 0; i < paths.Count; i++) result[i] = ok[i] ? outputs.AsSpan(slotOf[i] * tiles, tiles).ToArray() : null;
        return result;
    }

    /// <summary>The frame's region of interest cut into tiles; a region beyond the frame or a tile below the model's input is that frame's error.</summary>
    private TileGrid Cut(Mat img, string path, int input)
    {
        var roi = options.Roi ?? new PixelRect(0, 0, img.Width, img.Height);
        if (roi.Right > img.Width || roi.Bottom > img.Height)
        {
            throw new ImageDecodeException($"{path}: the image is {img.Width}x{img.Height}; --roi {roi.X},{roi.Y},{roi.Width},{roi.Height} reaches beyond it.");
        }
        var grid = TileGrid.Create(roi.Width, roi.Height, options.TileCols, options.TileRows, options.TileOverlap);
        if (grid.TileWidth < input || grid.TileHeight < input)
        {
            throw new ImageDecodeException($"{path}: --tiles {options.TileCols}x{options.TileRows} cuts its {roi.Width}x{roi.Height} region into {grid.TileWidth}x{grid.TileHeight} tiles, smaller than the model's {input}x{input} input; use fewer tiles or a smaller --image-size.");
        }
        return grid;
    }
}
