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
    /// Why 1e-4: the graph and the managed kernel sum the 128-term dot products in different orders (MLAS's
    /// blocked GEMM against the managed panels), which leaves about 1e-6 between the dots; the unit
    /// distance sqrt(2 − 2·dot) turns an error e in the dot into e / distance, so distances over 0.02 move by
    /// under 1e-4. Real patch distances here lie between 0.2 and 1.2 (measured below, in the log).
    /// </summary>
    public const float Tolerance = 1e-4f;

    [Fact]
    public void The_graph_gives_the_hand_computed_interval_averages_and_skips_excluded_and_empty_slots()
    {
        // Two patches, one view of width 2, three slots of two rows; slot 1 holds one row (padded), slot 2 none.
        var layout = new FeatureLayout(1, 2, [new ViewSpec("t", 1, 2)], 2);
        using var scoring = new OnnxScoring("cpu", new BackboneOptions());
        using var kernel = scoring.Create(layout, capacity: 3, keep: 2, topN: 1);
        Assert.Equal("onnx", kernel.Path);
        kernel.Store(0, [[1f, 0f, 0f, 1f]], 2);
        kernel.Store(1, [[1f, 0f]], 1);
        var frame = new FrameFeatures(layout);
        frame.Views[0][0] = 1f;    // q0 = (1, 0)
        frame.Views[0][2] = 0.6f;  // q1 = (0.6, 0.8)
        frame.Views[0][3] = 0.8f;
        var patches = new float[2];

        // Slots 0 and 1, k = 2. q0: both at distance 0. q1: slot 0's best dot 0.8 → sqrt(0.4); slot 1's 0.6 → sqrt(0.8).
        float image = kernel.Score(frame, [true, true, false], 2, 1, patches);
        Assert.Equal(0f, patches[0], 6);
        Assert.Equal((MathF.Sqrt(0.4f) + MathF.Sqrt(0.8f)) / 2, patches[1], 6);
        Assert.Equal(patches[1], image, 6);

        // k = 1 over slots 0 and 1: the nearer, slot 0.
        kernel.Score(frame, [true, true, false], 1, 1, patches);
        Assert.Equal(MathF.Sqrt(0.4f), patches[1], 6);

        // Slot 0 excluded (a frame's own entry): only slot 1 counts, even at k = 2 with the empty slot beside it.
        image = kernel.Score(frame, [false, true, false], 1, 1, patches);
        Assert.Equal(MathF.Sqrt(0.8f), patches[1], 6);
        Assert.Equal(MathF.Sqrt(0.8f), image, 6);

        // Overwriting slot 1 with q1 itself brings its distance to 0.
        kernel.Store(1, [[0.6f, 0.8f]], 1);
        kernel.Score(frame, [false, true, false], 1, 1, patches);
        Assert.Equal(0f, patches[1], 3);
    }

    [Fact]
    public void On_real_frames_the_graph_engine_gives_the_managed_engine_s_results_within_the_tolerance()
    {
        var frames = RealFrames("mvtec_ad/bottle/test", 20, out var layout);
        var options = EngineOptions.Default with { Batch = 8, ReservoirFrames = 10 };
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
        float worstPatch = 0, worstImage = 0, lowest = float.MaxValue;
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].FrameId, b[i].FrameId);
            Assert.Equal(a[i].ReferenceFrames, b[i].ReferenceFrames); // the same frames entered the reservoir
            for (int q = 0; q < a[i].Patches.Length; q++)
            {
                worstPatch = Math.Max(worstPatch, Math.Abs(a[i].Patches[q] - b[i].Patches[q]));
                lowest = Math.Min(lowest, a[i].Patches[q]);
            }
            worstImage = Math.Max(worstImage, Math.Abs(a[i].Image - b[i].Image));
        }
        output.WriteLine($"{a.Count} frames: largest patch difference {worstPatch:E2}, image {worstImage:E2}; lowest patch score {lowest:F3}");
        Assert.True(worstPatch <= Tolerance, $"patch scores differ by {worstPatch:E2}");
        Assert.True(worstImage <= Tolerance, $"image scores differ by {worstImage:E2}");
        Assert.Equal(managed.Quarantined, graph.Quarantined);
    }

    /// <summary>Real frames of <paramref name="folder"/> (every defect type, in file order), projected to the default 128 scoring dims.</summary>
    internal static FrameFeatures[] RealFrames(string folder, int count, out FeatureLayout layout)
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
