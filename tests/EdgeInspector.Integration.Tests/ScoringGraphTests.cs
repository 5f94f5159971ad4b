using System.Text.Json;
using EdgeInspector.Eval;
using Microsoft.ML.OnnxRuntime;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Imaging;
using EdgeInspector.Inference.Onnx;
using Xunit.Abstractions;

namespace EdgeInspector.Integration.Tests;

/// <summary>
/// The reservoir's scoring graphs on ONNX Runtime's CPU provider, held to the managed kernel (the plain
/// twin) by hand on a tiny case and on real frames.
/// </summary>
public sealed class ScoringGraphTests(ITestOutputHelper output)
{
    /// <summary>
    /// Why these: the graph and the managed kernel sum the 128-term dot products in different orders (MLAS's
    /// blocked GEMM against the managed panels), which leaves about 1e-6 between the dots; the unit
    /// distance sqrt(2 − 2·dot) turns an error e in the dot into e / distance. An image score is the map's
    /// maximum, a distance over 0.2 on these frames, so it moves by under 1e-5: <see cref="Tolerance"/>.
    /// A patch's score can be far smaller: the 5×5 window finds near-copies of a background patch at its
    /// own position in other bottles, and at their levels (the window searches bytes, WindowGrid) a copy can
    /// be exact, a distance of 0. There the distance's slope is unbounded: sqrt(2 − 2·dot) moves by up to
    /// sqrt(2e) for an error e in the dot. The managed search sums the levels exactly and the graph sums
    /// them in float32 (128 terms, about 1e-6 at worst), so such a patch moves by up to 1.4e-3:
    /// <see cref="PatchTolerance"/> is 2e-3.
    /// </summary>
    public const float Tolerance = 1e-4f;

    /// <inheritdoc cref="Tolerance"/>
    public const float PatchTolerance = 2e-3f;

    [Fact]
    public void The_graph_gives_the_hand_computed_interval_averages_and_skips_excluded_and_empty_slots()
    {
        // Two patches, one view of width 2, three slots of two rows; slot 1 holds one row (padded), slot 2 none.
        var layout = new FeatureLayout(1, 2, [new ViewSpec("t", 1, 2)], 2);
        using var scoring = new OnnxScoring("cpu", new BackboneOptions());
        using var kernel = scoring.Create(layout, capacity: 3, keep: 2, topN: 1, radius: -1);
        Assert.Equal("onnx", kernel.Path);
        kernel.Store(0, [[1f, 0f, 0f, 1f]], 2, null);
        kernel.Store(1, [[1f, 0f]], 1, null);
        var frame = new FrameFeatures(layout);
        frame.Views[0][0] = 1f;    // q0 = (1, 0)
        frame.Views[0][2] = 0.6f;  // q1 = (0.6, 0.8)
        frame.Views[0][3] = 0.8f;
        var patches = new float[2];

        // The query is searched at its levels, 1/63 of its largest magnitude (1), as the managed search takes it:
        // q1 is (38, 50)/63 (37.8 and 50.4 rounded). Slots 0 and 1, k = 2. q0: both at distance 0. q1: slot 0's
        // best dot 50/63 → √(2 − 100/63); slot 1's 38/63 → √(2 − 76/63).
        float near = MathF.Sqrt(2 - 100f / 63), far = MathF.Sqrt(2 - 76f / 63);
        float image = kernel.Score(frame, [true, true, false], 2, 1, patches);
        Assert.Equal(0f, patches[0], 6);
        Assert.Equal((near + far) / 2, patches[1], 5);
        Assert.Equal(patches[1], image, 6);

        // k = 1 over slots 0 and 1: the nearer, slot 0.
        kernel.Score(frame, [true, true, false], 1, 1, patches);
        Assert.Equal(near, patches[1], 5);

        // Slot 0 excluded (a frame's own entry): only slot 1 counts, even at k = 2 with the empty slot beside it.
        image = kernel.Score(frame, [false, true, false], 1, 1, patches);
        Assert.Equal(far, patches[1], 5);
        Assert.Equal(far, image, 5);

        // Overwriting slot 1 with q1's own levels: their dot is (38² + 50²)/63², a distance of √50/63.
        kernel.Store(1, [[38f / 63, 50f / 63]], 1, null);
        kernel.Score(frame, [false, true, false], 1, 1, patches);
        Assert.Equal(MathF.Sqrt(50) / 63, patches[1], 5);
    }

    [Fact]
    public void The_graph_searches_the_window_around_each_patch_as_computed_by_hand()
    {
        // A 1×3 grid of 2-D patches, one slot that keeps one row, (−1, 0), and whose whole frame is
        // (0, 1), (0.6, 0.8), (−1, 0); a window of radius 1 (a dot of 0 outside the grid).
        var layout = new FeatureLayout(1, 3, [new ViewSpec("t", 1, 2)], 2);
        using var scoring = new OnnxScoring("cpu", new BackboneOptions());
        using var kernel = scoring.Create(layout, capacity: 2, keep: 1, topN: 1, radius: 1);
        kernel.Store(0, [[-1f, 0f]], 1, [[0f, 1f, 0.6f, 0.8f, -1f, 0f]]);
        var frame = new FrameFeatures(layout);
        float[] q = [1, 0, 0, 1, 1, 0];
        q.CopyTo(frame.Views[0], 0);
        var patches = new float[3];
        // The window searches levels of 1/63 of each side's largest magnitude (as the managed search does):
        // (0.6, 0.8) is (38, 50)/63 (37.8 and 50.4 rounded), so its dot with (1, 0) is 38/63, not 0.6.
        // q0: outside 0, (0,1) 0, (0.6,0.8) 38/63, the kept row −1: best 38/63, distance sqrt(2 − 76/63).
        // q1: (0,1) 1: distance 0. q2: 38/63, −1, outside 0: the same as q0.
        float image = kernel.Score(frame, [true, false], 1, 1, patches);
        float expected = MathF.Sqrt(2 - 2 * 38f / 63);
        Assert.Equal(expected, patches[0], 5);
        Assert.Equal(0f, patches[1], 3);
        Assert.Equal(expected, patches[2], 5);
        Assert.Equal(expected, image, 5);
        // Without the whole frame a windowed kernel refuses the slot.
        Assert.Throws<ArgumentException>(() => kernel.Store(1, [[1f, 0f]], 1, null));
    }

    [Fact]
    public void The_window_s_gather_indices_point_at_each_patch_s_offset_in_the_band_products()
    {
        // A 2×3 grid, radius 1: the band products are [H + 2r = 4][W + 2r = 5][(2r + 1)·W = 9] per slot.
        // Patch (y, x) at offset (dy, dx) is padded row y + dy, column x + dx, block dy, entry x.
        long[] index = ScoringGraphs.WindowIndices(2, 3, 1);
        Assert.Equal(2 * 3 * 9, index.Length);
        Assert.Equal(0, index[0]);                                  // (0, 0) at (0, 0): row 0, column 0, block 0, entry 0
        Assert.Equal(((1 * 5) + 1) * 9 + 3 + 0, index[4]);          // (0, 0) at (1, 1), its own place: 57
        Assert.Equal(((3 * 5) + 2) * 9 + 6 + 2, index[5 * 9 + 6]);  // (1, 2) at (2, 0): 161
        Assert.Equal(((3 * 5) + 4) * 9 + 6 + 2, index[^1]);         // (1, 2) at (2, 2), the last: 179 of 4·5·9 = 180
    }

    [Fact]
    public void On_a_grid_wider_than_it_is_tall_the_graph_engine_gives_the_managed_engine_s_results()
    {
        // The real frames' grids are square; here rows and columns differ, so that a row taken for a column
        // anywhere in the window's layout moves the scores. Each frame is a base pattern shifted by −1, 0 or +1
        // columns, with noise: the window finds the shifted copies, the kept rows the rest.
        const int h = 5, w = 7, d = 16;
        var layout = new FeatureLayout(h, w, [new ViewSpec("t", 1, d), new ViewSpec("t", 3, d)], d);
        var options = EngineOptions.Default with { Batch = 6, ReservoirFrames = 5, ReservoirKeep = 0.2, ReservoirWindow = 1 };
        var random = new Random(7);
        var basis = new float[layout.Views.Count][];
        for (int v = 0; v < basis.Length; v++)
        {
            basis[v] = new float[(w + 2) * h * d];
            for (int i = 0; i < basis[v].Length; i++) basis[v][i] = (float)(random.NextDouble() * 2 - 1);
        }
        var frames = new FrameFeatures[16];
        for (int f = 0; f < frames.Length; f++)
        {
            frames[f] = new FrameFeatures(layout);
            int shift = f % 3;
            for (int v = 0; v < basis.Length; v++)
            {
                for (int y = 0; y < h; y++)
                {
                    for (int x = 0; x < w; x++)
                    {
                        var patch = frames[f].Views[v].AsSpan((y * w + x) * d, d);
                        for (int k = 0; k < d; k++) patch[k] = basis[v][(y * (w + 2) + x + shift) * d + k] + 0.3f * (float)(random.NextDouble() * 2 - 1);
                        float norm = System.Numerics.Tensors.TensorPrimitives.Norm(patch);
                        System.Numerics.Tensors.TensorPrimitives.Divide(patch, norm, patch);
                    }
                }
            }
            for (int k = 0; k < d; k++) frames[f].Global[k] = (float)random.NextDouble();
        }
        var (a, b) = BothPaths(frames, layout, options);
        float worst = 0;
        for (int i = 0; i < a.Count; i++)
        {
            for (int q = 0; q < a[i].Patches.Length; q++) worst = Math.Max(worst, Math.Abs(a[i].Patches[q] - b[i].Patches[q]));
            Assert.True(Math.Abs(a[i].Image - b[i].Image) <= Tolerance, $"frame {i}: image {a[i].Image} against {b[i].Image}");
        }
        output.WriteLine($"{a.Count} frames of a {h}×{w} grid: largest patch difference {worst:E2}");
        Assert.True(worst <= PatchTolerance, $"patch scores differ by {worst:E2}");
    }

    [Fact]
    public void On_real_frames_the_graph_engine_gives_the_managed_engine_s_results_within_the_tolerance()
    {
        var (frames, layout) = Bottles.Value;
        var (a, b) = BothPaths(frames, layout, EngineOptions.Default with { Batch = 8, ReservoirFrames = 10 });
        float worstPatch = 0, worstImage = 0, lowest = float.MaxValue;
        for (int i = 0; i < a.Count; i++)
        {
            for (int q = 0; q < a[i].Patches.Length; q++)
            {
                worstPatch = Math.Max(worstPatch, Math.Abs(a[i].Patches[q] - b[i].Patches[q]));
                lowest = Math.Min(lowest, a[i].Patches[q]);
            }
            worstImage = Math.Max(worstImage, Math.Abs(a[i].Image - b[i].Image));
        }
        output.WriteLine($"{a.Count} frames: largest patch difference {worstPatch:E2}, image {worstImage:E2}; lowest patch score {lowest:F3}");
        Assert.True(worstPatch <= PatchTolerance, $"patch scores differ by {worstPatch:E2}");
        Assert.True(worstImage <= Tolerance, $"image scores differ by {worstImage:E2}");
    }

    /// <summary>
    /// The frames through an engine on the managed kernel and one on the graphs: each frame answered once
    /// on both, the same frames entering the reservoir and kept out of it. The results, managed first.
    /// </summary>
    private static (List<StreamResult> Managed, List<StreamResult> Graph) BothPaths(FrameFeatures[] frames, FeatureLayout layout, EngineOptions options)
    {
        using var scoring = new OnnxScoring("cpu", new BackboneOptions());
        using var managed = new ReservoirEngine(layout, options);
        using var graph = new ReservoirEngine(layout, options, kernel: scoring.Create);
        Assert.Equal("managed", managed.ScoringPath);
        Assert.Equal("onnx", graph.ScoringPath);
        var a = new List<StreamResult>();
        var b = new List<StreamResult>();
        for (int i = 0; i < frames.Length; i++)
        {
            a.AddRange(managed.Push(frames[i], i));
            b.AddRange(graph.Push(frames[i], i));
        }
        Assert.Equal(frames.Length, a.Count);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].FrameId, b[i].FrameId);
            Assert.Equal(a[i].ReferenceFrames, b[i].ReferenceFrames); // the same frames entered the reservoir
        }
        Assert.Equal(managed.Quarantined, graph.Quarantined);
        return (a, b);
    }

    [Fact]
    public void A_graph_engine_restored_from_a_snapshot_scores_as_the_engine_that_made_it()
    {
        // A warm restart: the learned state of a managed engine, taken up by an engine on the graphs (its slots
        // written through the store graph), then both score the same later frames.
        var (frames, layout) = Bottles.Value;
        var options = EngineOptions.Default with { Batch = 8, ReservoirFrames = 10 };
        using var scoring = new OnnxScoring("cpu", new BackboneOptions());
        using var managed = new ReservoirEngine(layout, options);
        for (int i = 0; i < 10; i++) managed.Push(frames[i], i);
        using var restored = new ReservoirEngine(layout, options, kernel: scoring.Create);
        restored.Restore(managed.Capture());
        for (int i = 10; i < frames.Length; i++)
        {
            var a = Assert.Single(managed.Push(frames[i], i));
            var b = Assert.Single(restored.Push(frames[i], i));
            Assert.False(b.WarmUp);
            Assert.Equal(a.ReferenceFrames, b.ReferenceFrames);
            Assert.Equal(a.Image, b.Image, Tolerance);
            Assert.Equal(a.Calibrated, b.Calibrated, 1e-3f);
        }
    }

    /// <summary>
    /// What TensorRT 10's ONNX parser takes (onnx-tensorrt's docs/operators.md, 10.15): a node it refuses runs on
    /// the CUDA provider instead, and the graph is cut into several TensorRT engines with copies between them.
    /// No GPU runs here, so the graphs are held to the documented limits: every operator on its list, a TopK
    /// sorted with a constant K under 3840 (the interval count, an input, is at most the 64 slots), a Reduce's
    /// axes an attribute or an initializer where given, Pad in constant mode.
    /// </summary>
    [Fact]
    public void The_graphs_keep_to_what_TensorRT_s_ONNX_parser_takes()
    {
        using var backbone = new OnnxBackbone(new BackboneOptions { ModelPath = Shared.Model("resnet50v2_features.onnx"), ExecutionProviders = ["cpu"] });
        var projector = new ViewProjector(backbone.Layout, 128, ViewProjector.DefaultSeed);
        var models = new List<(string Name, byte[] Model)>
        {
            ("views", backbone.ViewsModel(projector)),
            ("views, full width", backbone.ViewsModel(null)),
        };
        foreach (int radius in new[] { 2, -1 })
        {
            var shape = ScoringShape.For(projector.Target, capacity: 64, keep: 49, topN: 1, radius);
            models.Add(($"score, radius {radius}", ScoringGraphs.Score(shape)));
            models.Add(($"store, radius {radius}", ScoringGraphs.Store(shape)));
        }
        string[] supported =
        [
            "Abs", "AveragePool", "Clip", "Concat", "Conv", "Div", "Flatten", "Gather", "GlobalAveragePool", "Greater", "Max",
            "MatMul", "Mul", "Pad", "ReduceL2", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Round", "ScatterND",
            "Shape", "Slice", "Split", "Sqrt", "Sub", "Sum", "TopK", "Transpose", "Where", "Add", "Equal",
        ];
        var refused = new List<string>();
        foreach (var (name, bytes) in models)
        {
            var model = Onnx.ModelProto.Parser.ParseFrom(bytes);
            var initializers = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
            foreach (var node in model.Graph.Node)
            {
                string where = $"{name}: {node.OpType} '{node.Name}'";
                var attributes = node.Attribute.ToDictionary(a => a.Name);
                if (!supported.Contains(node.OpType)) refused.Add($"{where} is not on the list");
                if (node.OpType == "TopK")
                {
                    if (!attributes.TryGetValue("sorted", out var sorted) || sorted.I != 1) refused.Add($"{where}: sorted must be 1");
                    if (initializers.Contains(node.Input[1]) && model.Graph.Initializer.Single(i => i.Name == node.Input[1]).Int64Data[0] >= 3840) refused.Add($"{where}: K must be under 3840");
                }
                // Without axes a Reduce takes every axis; axes given as an input must be constant.
                if (node.OpType.StartsWith("Reduce", StringComparison.Ordinal) && node.Input.Count > 1 && node.Input[1] != "" && !initializers.Contains(node.Input[1]))
                    refused.Add($"{where}: axes must be an initializer");
                if (node.OpType == "Pad" && attributes.TryGetValue("mode", out var mode) && mode.S.ToStringUtf8() != "constant") refused.Add($"{where}: constant padding only");
            }
        }
        Assert.True(refused.Count == 0, string.Join("\n", refused));
    }

    [Theory]
    [InlineData(128)] // the default: projected before the pooling
    [InlineData(0)]   // full width, no projection
    public void The_views_graph_builds_the_managed_views_from_real_frames(int scoreDims)
    {
        using var backbone = new OnnxBackbone(new BackboneOptions { ModelPath = Shared.Model("resnet50v2_features.onnx"), ExecutionProviders = ["cpu"] });
        var o = backbone.Options;
        var pre = new ImagePreprocessor(o.InputWidth, o.InputHeight, rgb: true, o.Mean, o.Std);
        var projector = scoreDims > 0 ? new ViewProjector(backbone.Layout, scoreDims, ViewProjector.DefaultSeed) : null;
        var layout = projector?.Target ?? backbone.Layout;
        string[] files = [.. Directory.GetFiles(Shared.Data("mvtec_ad/bottle/test/broken_large")).Order().Take(3)];
        var tensor = new float[files.Length * backbone.ImageSize];
        for (int i = 0; i < files.Length; i++)
        {
            using var img = ImagePreprocessor.Decode(files[i]);
            pre.Write(img, tensor.AsSpan(i * backbone.ImageSize, backbone.ImageSize));
        }
        var managed = files.Select(_ => new FrameFeatures(layout)).ToArray();
        var graph = files.Select(_ => new FrameFeatures(layout)).ToArray();
        backbone.Extract(tensor, files.Length, managed, projector);
        backbone.Extract(tensor, files.Length, graph, projector, viewsOnGraph: true);
        float worst = 0;
        for (int i = 0; i < files.Length; i++)
        {
            for (int v = 0; v < layout.Views.Count; v++)
            {
                for (int j = 0; j < managed[i].Views[v].Length; j++) worst = Math.Max(worst, Math.Abs(managed[i].Views[v][j] - graph[i].Views[v][j]));
            }
            for (int j = 0; j < layout.GlobalDim; j++) worst = Math.Max(worst, Math.Abs(managed[i].Global[j] - graph[i].Global[j]));
        }
        output.WriteLine($"score_dims {scoreDims}: largest difference between the graph's and the managed views {worst:E2}");
        Assert.True(worst <= ViewTolerance, $"views differ by {worst:E2}");
        Assert.NotEqual(0f, graph[0].Views[^1].Select(Math.Abs).Max()); // the graph wrote something
    }

    /// <summary>
    /// Why 1e-5: every view row is unit length, its entries about 1/sqrt(D) (0.09 at 128 dims, 0.03 at 1024);
    /// the graph and the managed builder sum the projection's 512–1024 products and the pooling's a² terms in
    /// different orders, each leaving float32 rounding of about 1e-7 relative.
    /// </summary>
    public const float ViewTolerance = 1e-5f;

    /// <summary>20 real bottle frames, every defect type, projected: extracted once for the tests that only read them.</summary>
    private static readonly Lazy<(FrameFeatures[] Frames, FeatureLayout Layout)> Bottles = new(() =>
    {
        var frames = RealFrames("mvtec_ad/bottle/test", 20, out var layout);
        return (frames, layout);
    });

    /// <summary>Real frames of <paramref name="folder"/> (every defect type, in file order), projected to the default 128 scoring dims.</summary>
    private static FrameFeatures[] RealFrames(string folder, int count, out FeatureLayout layout)
    {
        using var backbone = new OnnxBackbone(new BackboneOptions { ModelPath = Shared.Model("resnet50v2_features.onnx"), ExecutionProviders = ["cpu"] });
        var o = backbone.Options;
        var pre = new ImagePreprocessor(o.InputWidth, o.InputHeight, rgb: true, o.Mean, o.Std);
        var files = Directory.GetDirectories(Shared.Data(folder)).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(d => Directory.GetFiles(d).OrderBy(f => f, StringComparer.Ordinal).Take(count / 4 + 1))
            .Take(count).ToArray();
        var projector = new ViewProjector(backbone.Layout, EngineOptions.Default.ScoreDims, ViewProjector.DefaultSeed);
        layout = projector.Target;
        var frames = new FrameFeatures[files.Length];
        var tensor = new float[backbone.ImageSize];
        for (int i = 0; i < files.Length; i++)
        {
            using var img = ImagePreprocessor.Decode(files[i]);
            pre.Write(img, tensor);
            frames[i] = new FrameFeatures(layout);
            backbone.Extract(tensor, 1, [frames[i]], projector);
        }
        return frames;
    }
}

/// <summary>The eval CLI on the graphs: the same accuracy as on the managed kernel, and an export that replays.</summary>
public sealed class GraphExportTests(ITestOutputHelper output)
{
    private static (int Exit, string Log, JsonElement Results) Run(string outDir, params string[] args)
    {
        var writer = new StringWriter();
        var options = EvalOptions.Parse([.. args, "--out", outDir, "--quiet", "--model", Shared.Model("resnet50v2_features.onnx")]);
        int exit = new Evaluator(options, writer).Run();
        return (exit, writer.ToString(), JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json"))).RootElement);
    }

    [Fact]
    public void A_lot_scored_on_the_graphs_matches_the_managed_run_and_its_export_reproduces_the_cpu_outputs()
    {
        using var tmp = new TempFolder();
        string graphs = Path.Combine(tmp.Path, "graphs");
        string[] lot = [Shared.Data("glass_industrial/glass"), "--mode", "stream", "--limit", "40", "--batch", "16"];
        var (exit, log, onnx) = Run(Path.Combine(tmp.Path, "onnx"), [.. lot, "--scoring", "onnx", "--export-graphs", graphs]);
        Assert.Equal(0, exit);
        var (exit2, _, managed) = Run(Path.Combine(tmp.Path, "managed"), [.. lot, "--scoring", "managed"]);
        Assert.Equal(0, exit2);
        var a = onnx.GetProperty("modes").GetProperty("stream");
        var b = managed.GetProperty("modes").GetProperty("stream");
        Assert.Equal(("cpu", "onnx"), (a.GetProperty("provider").GetString(), a.GetProperty("scoring").GetString()));
        Assert.Equal(("cpu", "managed"), (b.GetProperty("provider").GetString(), b.GetProperty("scoring").GetString()));
        foreach (string key in new[] { "image_auroc", "pixel_auroc", "pro" })
        {
            double x = a.GetProperty(key).GetDouble(), y = b.GetProperty(key).GetDouble();
            output.WriteLine($"{key}: onnx {x:F6}, managed {y:F6}");
            Assert.True(Math.Abs(x - y) <= 0.001, $"{key}: onnx {x}, managed {y} (0.1 points allowed)");
        }
        Assert.Contains("graphs exported to", log);

        // The export loads back into ONNX Runtime and gives what the eval's CPU run gave, frame by frame.
        var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(graphs, "manifest.json"))).RootElement;
        int views = manifest.GetProperty("dims").GetArrayLength(), p = manifest.GetProperty("patches").GetInt32();
        var (expected, eShape) = NpyFile.ReadFloats(Path.Combine(graphs, "expected_patches.npy"));
        var (images, _) = NpyFile.ReadFloats(Path.Combine(graphs, "expected_image.npy"));
        int frames = (int)eShape[0];
        Assert.Equal(GraphExport.Frames, frames);
        using var session = new InferenceSession(Path.Combine(graphs, "score.onnx"));
        var (excluded, xShape) = NpyFile.ReadBools(Path.Combine(graphs, "excluded.npy"));
        var (k, _) = NpyFile.ReadLongs(Path.Combine(graphs, "k.npy"));
        int radius = manifest.GetProperty("radius").GetInt32();
        Assert.Equal(EngineOptions.Default.ReservoirWindow, radius); // the default engine searches a window
        var reservoirs = new (float[] Data, long[] Shape)[views];
        var queries = new (float[] Data, long[] Shape)[views];
        var grids = new (float[] Data, long[] Shape)[views];
        for (int v = 0; v < views; v++)
        {
            reservoirs[v] = NpyFile.ReadFloats(Path.Combine(graphs, $"reservoir_{v}.npy"));
            queries[v] = NpyFile.ReadFloats(Path.Combine(graphs, $"query_{v}.npy"));
            grids[v] = NpyFile.ReadFloats(Path.Combine(graphs, $"grid_{v}.npy"));
        }
        double worst = 0;
        for (int f = 0; f < frames; f++)
        {
            var inputs = new Dictionary<string, OrtValue>
            {
                ["excluded"] = OrtValue.CreateTensorValueFromMemory(excluded, xShape),
                ["k"] = OrtValue.CreateTensorValueFromMemory(k, [1]),
            };
            for (int v = 0; v < views; v++)
            {
                long d = queries[v].Shape[2];
                inputs[$"query_{v}"] = OrtValue.CreateTensorValueFromMemory(queries[v].Data[(int)(f * p * d)..(int)((f + 1) * p * d)], [p, d]);
                inputs[$"reservoir_{v}"] = OrtValue.CreateTensorValueFromMemory(reservoirs[v].Data, reservoirs[v].Shape);
                inputs[$"grid_{v}"] = OrtValue.CreateTensorValueFromMemory(grids[v].Data, grids[v].Shape);
            }
            using var run = new RunOptions();
            using var results = session.Run(run, inputs, ["patches", "image"]);
            var patches = results[0].GetTensorDataAsSpan<float>();
            for (int q = 0; q < p; q++) worst = Math.Max(worst, Math.Abs(patches[q] - expected[f * p + q]));
            Assert.Equal(images[f], results[1].GetTensorDataAsSpan<float>()[0], 6);
            foreach (var value in inputs.Values) value.Dispose();
        }
        Assert.True(worst <= 1e-6, $"the replayed graph differs from the export's outputs by {worst:E2}");

        // The store graph writes one slot (slot 1's rows and whole frame into slot 0) and leaves the others as they were.
        using var store = new InferenceSession(Path.Combine(graphs, "store.onnx"));
        var storeInputs = new Dictionary<string, OrtValue> { ["slot"] = OrtValue.CreateTensorValueFromMemory(new long[] { 0 }, [1, 1]) };
        int gh = manifest.GetProperty("grid_height").GetInt32(), gw = manifest.GetProperty("grid_width").GetInt32();
        for (int v = 0; v < views; v++)
        {
            var (data, shape) = reservoirs[v];
            long slot = shape[1] * shape[2];
            storeInputs[$"reservoir_{v}"] = OrtValue.CreateTensorValueFromMemory(data, shape);
            storeInputs[$"rows_{v}"] = OrtValue.CreateTensorValueFromMemory(data[(int)slot..(int)(2 * slot)], [1, shape[1], shape[2]]);
            // Slot 1's frame: its padded grid without the padding.
            var (grid, gShape) = grids[v];
            int d = (int)gShape[3], hp = (int)gShape[1], wp = (int)gShape[2];
            var frame = new float[gh * gw * d];
            for (int y = 0; y < gh; y++)
                for (int x = 0; x < gw; x++)
                    grid.AsSpan((((hp + y + radius) * wp) + x + radius) * d, d).CopyTo(frame.AsSpan((y * gw + x) * d, d));
            storeInputs[$"grid_{v}"] = OrtValue.CreateTensorValueFromMemory(grid, gShape);
            storeInputs[$"frame_{v}"] = OrtValue.CreateTensorValueFromMemory(frame, [1, gh, gw, d]);
        }
        string[] outputs = [.. Enumerable.Range(0, views).SelectMany(v => new[] { $"updated_{v}", $"updated_grid_{v}" })];
        using (var run = new RunOptions())
        using (var updated = store.Run(run, storeInputs, outputs))
        {
            for (int v = 0; v < views; v++)
            {
                var (data, shape) = reservoirs[v];
                int slot = (int)(shape[1] * shape[2]);
                var u = updated[2 * v].GetTensorDataAsSpan<float>();
                Assert.True(u[..slot].SequenceEqual(data.AsSpan(slot, slot)), $"view {v}: slot 0 does not hold slot 1's rows");
                Assert.True(u[slot..].SequenceEqual(data.AsSpan(slot)), $"view {v}: a slot other than 0 changed");
                var (grid, gShape) = grids[v];
                int gslot = (int)(gShape[1] * gShape[2] * gShape[3]);
                var ug = updated[2 * v + 1].GetTensorDataAsSpan<float>();
                Assert.True(ug[..gslot].SequenceEqual(grid.AsSpan(gslot, gslot)), $"view {v}: slot 0's grid does not hold slot 1's frame, zero-padded");
                Assert.True(ug[gslot..].SequenceEqual(grid.AsSpan(gslot)), $"view {v}: a grid slot other than 0 changed");
            }
        }
        foreach (var value in storeInputs.Values) value.Dispose();

        // The views graph: the exported taps through views.onnx give the views the eval built from them.
        using var viewsSession = new InferenceSession(Path.Combine(graphs, "views.onnx"));
        var tapInputs = new Dictionary<string, OrtValue>();
        foreach (var tap in manifest.GetProperty("taps").EnumerateArray())
        {
            string name = tap.GetProperty("name").GetString()!;
            var (data, shape) = NpyFile.ReadFloats(Path.Combine(graphs, $"taps_{name}.npy"));
            Assert.Equal(GraphExport.ViewFrames, (int)shape[0]);
            tapInputs[name] = OrtValue.CreateTensorValueFromMemory(data, shape);
        }
        string[] viewNames = [.. Enumerable.Range(0, views).Select(v => $"view_{v}"), "global"];
        double worstView = 0;
        using (var run = new RunOptions())
        using (var built = viewsSession.Run(run, tapInputs, viewNames))
        {
            for (int v = 0; v <= views; v++)
            {
                var (want, _) = NpyFile.ReadFloats(Path.Combine(graphs, v < views ? $"expected_view_{v}.npy" : "expected_global.npy"));
                var got = built[v].GetTensorDataAsSpan<float>();
                Assert.Equal(want.Length, got.Length);
                for (int j = 0; j < want.Length; j++) worstView = Math.Max(worstView, Math.Abs(got[j] - want[j]));
            }
        }
        foreach (var value in tapInputs.Values) value.Dispose();
        Assert.True(worstView <= 1e-6, $"the replayed views graph differs from the export's views by {worstView:E2}");
        Assert.True(manifest.GetProperty("views_managed_max_difference").GetDouble() <= ScoringGraphTests.ViewTolerance);

        // The device check run here, as it runs on a GPU machine: no onnxruntime in Debian's python, so its PyTorch
        // twins of the score and views graphs run on the CPU and are held to the export (setup.sh installs them).
        var (checkExit, report) = DeviceCheck(graphs);
        output.WriteLine(report);
        Assert.True(checkExit == 0, report);
        Assert.Matches(@"the score graph's steps against the \.NET CPU outputs, 4 frames: .* -> PASS", report);
        Assert.Matches(@"the views graph's steps against the \.NET eval's views, 2 frames: .* -> PASS", report);
        Assert.Contains("no check failed", report);
        Assert.Contains("== not proven, and why", report);
    }

    /// <summary>scripts/device_check.py on <paramref name="graphs"/> under Debian's python3 (numpy, torch and onnx from apt).</summary>
    private static (int Exit, string Report) DeviceCheck(string graphs)
    {
        string? script = null;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null && script is null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "scripts", "device_check.py");
            if (File.Exists(candidate)) script = candidate;
        }
        if (script is null) throw new InvalidOperationException($"No scripts/device_check.py above {AppContext.BaseDirectory}.");
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(graphs);
        using var p = System.Diagnostics.Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string report = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, report + stderr.Result);
    }
}

/// <summary>Reads the .npy files the export writes (version 1.0, little-endian, C order).</summary>
internal static class NpyFile
{
    public static (float[] Data, long[] Shape) ReadFloats(string path) => Read<float>(path, "<f4");

    public static (long[] Data, long[] Shape) ReadLongs(string path) => Read<long>(path, "<i8");

    public static (bool[] Data, long[] Shape) ReadBools(string path) => Read<bool>(path, "|b1");

    private static (T[] Data, long[] Shape) Read<T>(string path, string descr) where T : unmanaged
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal("\u0093NUMPY", System.Text.Encoding.Latin1.GetString(bytes, 0, 6));
        int headerLength = BitConverter.ToUInt16(bytes, 8);
        string header = System.Text.Encoding.ASCII.GetString(bytes, 10, headerLength);
        Assert.Contains($"'descr': '{descr}'", header);
        Assert.Equal(0, (10 + headerLength) % 64);
        string dims = header[(header.IndexOf("'shape': (", StringComparison.Ordinal) + 10)..header.IndexOf(')', StringComparison.Ordinal)];
        var shape = dims.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
        var data = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(bytes.AsSpan(10 + headerLength)).ToArray();
        Assert.Equal(shape.Aggregate(1L, (x, y) => x * y), data.Length);
        return (data, shape);
    }
}
