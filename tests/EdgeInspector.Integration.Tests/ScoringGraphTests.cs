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
        Assert.True(scoring.StoreInPlace); // the CPU provider's ScatterND and ScatterElements take their output as their input
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
        // A 2×3 grid, radius 1, blocks of 2 columns: padded rows H + 2r = 4, W + 2r = 5 columns in 3 blocks, each
        // block against the query's B + 2r = 4 columns of each of the 2r + 1 = 3 row offsets. The MatMul's rows
        // are [4 rows][3 blocks][3 offsets][4 query columns][2 block columns] = 288 per slot.
        // Patch (y, x) at offset (dy, dx) is padded row y + dy, column x + dx (block (x + dx) / 2, column
        // (x + dx) mod 2 of it), offset dy, query column x − 2·block + 2.
        var shape = new ScoringShape(6, [4], 1, 1, 1, 2, 3, 1);
        Assert.Equal(2, shape.Block);
        Assert.Equal([4L, 3, 4, 2, 1], shape.GridDims(0));
        long[] index = ScoringGraphs.WindowIndices(shape);
        Assert.Equal(2 * 3 * 9, index.Length);
        Assert.Equal(((0 * 3 + 0) * 4 + 2) * 2 + 0, index[0]);               // (0, 0) at (0, 0): row 0, block 0, offset 0, query column 2: 4
        Assert.Equal((((1 * 3 + 0) * 3 + 1) * 4 + 2) * 2 + 1, index[4]);     // (0, 0) at (1, 1), its own place: 85
        Assert.Equal((((3 * 3 + 1) * 3 + 2) * 4 + 2) * 2 + 0, index[5 * 9 + 6]); // (1, 2) at (2, 0): column 2, block 1: 260
        Assert.Equal((((3 * 3 + 2) * 3 + 2) * 4 + 0) * 2 + 0, index[^1]);    // (1, 2) at (2, 2): column 4, block 2, query column 0: 280 of 288
        Assert.Equal([4L, 85, 260, 280], new[] { index[0], index[4], index[51], index[^1] });
    }

    [Theory]
    [InlineData(true)]  // the store graph writes the reservoir's buffers in place (the CPU and CUDA providers)
    [InlineData(false)] // into a second set, swapped after each store (TensorRT without the CUDA provider)
    public void On_a_grid_wider_than_it_is_tall_the_graph_engine_gives_the_managed_engine_s_results(bool storeInPlace)
    {
        // The real frames' grids are square; here rows and columns differ, so that a row taken for a column
        // anywhere in the window's layout moves the scores. Each frame is a base pattern shifted by −1, 0 or +1
        // columns, with noise: the window finds the shifted copies, the kept rows the rest. 16 frames through a
        // reservoir of 5 overwrite every slot twice.
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
        var (a, b) = BothPaths(frames, layout, options, storeInPlace);
        float worst = 0;
        for (int i = 0; i < a.Count; i++)
        {
            for (int q = 0; q < a[i].Patches.Length; q++) worst = Math.Max(worst, Math.Abs(a[i].Patches[q] - b[i].Patches[q]));
            Assert.True(Math.Abs(a[i].Image - b[i].Image) <= Tolerance, $"frame {i}: image {a[i].Image} against {b[i].Image}");
        }
        output.WriteLine($"{a.Count} frames of a {h}×{w} grid, the store in place: {storeInPlace}: largest patch difference {worst:E2}");
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
    private static (List<StreamResult> Managed, List<StreamResult> Graph) BothPaths(FrameFeatures[] frames, FeatureLayout layout, EngineOptions options, bool storeInPlace = true)
    {
        using var scoring = new OnnxScoring("cpu", new BackboneOptions(), storeInPlace);
        Assert.Equal(storeInPlace, scoring.StoreInPlace);
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
            "Abs", "AveragePool", "Clip", "Concat", "Conv", "Div", "Expand", "Flatten", "Gather", "GlobalAveragePool", "Greater", "Max",
            "MatMul", "Mul", "Pad", "ReduceL2", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize", "Round", "ScatterElements", "ScatterND",
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
