using System.Text.Json;
using EdgeInspector.Eval;

namespace EdgeInspector.Integration.Tests;

public sealed class EvalCliTests
{
    private static (int Exit, string Log, JsonElement Results) Run(string outDir, params string[] args)
    {
        var writer = new StringWriter();
        var options = EvalOptions.Parse([.. args, "--out", outDir, "--quiet", "--model", Shared.Model("resnet50v2_features.onnx")]);
        int exit = new Evaluator(options, writer).Run();
        var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json"))).RootElement;
        return (exit, writer.ToString(), json);
    }

    [Fact]
    public void Glass_end_to_end_meets_the_accuracy_floor_and_writes_every_output()
    {
        using var tmp = new TempFolder();
        var (exit, log, r) = Run(tmp.Path, Shared.Data("glass_industrial/glass"), "--mode", "musc,stream", "--limit", "48", "--batch", "24", "--score-dims", "128");
        Assert.Equal(0, exit);
        Assert.Equal("glass", r.GetProperty("category").GetString());
        Assert.Equal(48, r.GetProperty("frames").GetInt32());
        foreach (string mode in new[] { "musc", "stream" })
        {
            var m = r.GetProperty("modes").GetProperty(mode);
            foreach (string key in new[] { "image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max", "pro" })
            {
                double v = m.GetProperty(key).GetDouble();
                Assert.InRange(v, 0, 1);
            }
            foreach (string stage in new[] { "preprocess", "backbone", "features", "scoring", "total" })
            {
                Assert.True(m.GetProperty("ms_per_frame").GetProperty(stage).GetDouble() > 0, $"{mode} {stage}");
            }
            Assert.True(m.GetProperty("peak_rss_mb").GetDouble() > 0);
            Assert.True(File.Exists(Path.Combine(tmp.Path, $"roc_{mode}.png")));
            Assert.True(File.Exists(Path.Combine(tmp.Path, $"{mode}_false_negative_1.png")));
            Assert.True(File.Exists(Path.Combine(tmp.Path, $"{mode}_false_positive_1.png")));
            // Floors: measured on this slice (see README) minus a margin; a broken scorer lands near 0.5.
            Assert.True(m.GetProperty("image_auroc").GetDouble() >= 0.90, $"{mode} image AUROC {m.GetProperty("image_auroc")}");
            Assert.True(m.GetProperty("pixel_auroc").GetDouble() >= 0.93, $"{mode} pixel AUROC {m.GetProperty("pixel_auroc")}");
        }
        Assert.True(File.Exists(Path.Combine(tmp.Path, "roc_all.png")));
        Assert.Contains("scoring speed-up stream vs musc", log);
    }

    [Fact]
    public void MobileNetV2_dropped_in_by_its_taps_scores_a_real_lot_above_the_floor()
    {
        // The lighter backbone of docs/evaluation.md: a model and taps from the command line, nothing else.
        using var tmp = new TempFolder();
        var writer = new StringWriter();
        var options = EvalOptions.Parse([Shared.Data("glass_industrial/glass"), "--mode", "stream", "--limit", "48", "--batch", "24",
            "--model", Shared.Model("mobilenetv2_features.onnx"), "--taps", "block4,block11", "--out", tmp.Path, "--quiet"]);
        Assert.Equal(0, new Evaluator(options, writer).Run());
        string log = writer.ToString();
        Assert.Contains("mobilenetv2_features.onnx", log);
        Assert.Contains("block4/a1", log);
        Assert.Contains("block11/a5", log);
        var m = JsonDocument.Parse(File.ReadAllText(Path.Combine(tmp.Path, "results.json"))).RootElement.GetProperty("modes").GetProperty("stream");
        Assert.Equal(48, m.GetProperty("frames_scored").GetInt32());
        // Floors: measured on this slice (image 100.0, pixel 96.9) minus a margin; a broken scorer lands near 0.5.
        Assert.True(m.GetProperty("image_auroc").GetDouble() >= 0.90, $"image AUROC {m.GetProperty("image_auroc")}");
        Assert.True(m.GetProperty("pixel_auroc").GetDouble() >= 0.90, $"pixel AUROC {m.GetProperty("pixel_auroc")}");
    }

    [Fact]
    public void A_region_cut_into_tiles_is_scored_whole_and_recorded()
    {
        // VisA macaroni1 at full resolution (1500 x 1000): the left 1200 x 900 in 2 x 2 tiles of 686 x 515.
        using var tmp = new TempFolder();
        var (exit, log, r) = Run(tmp.Path, Shared.Data("visa/macaroni1"), "--mode", "musc,stream", "--limit", "16", "--batch", "8",
            "--roi", "0,50,1200,900", "--tiles", "2x2", "--tile-overlap", "0.25");
        Assert.Equal(0, exit);
        var tiling = r.GetProperty("tiling");
        Assert.Equal([0, 50, 1200, 900], tiling.GetProperty("roi").EnumerateArray().Select(x => x.GetInt32()));
        Assert.Equal((2, 2, 0.25, "position"), (tiling.GetProperty("cols").GetInt32(), tiling.GetProperty("rows").GetInt32(), tiling.GetProperty("overlap").GetDouble(), tiling.GetProperty("refs").GetString()));
        // The pixel metrics are computed on the region at its full resolution, not at the tiles' 224.
        Assert.Equal((1200, 900), (tiling.GetProperty("map_width").GetInt32(), tiling.GetProperty("map_height").GetInt32()));
        Assert.Contains("in 2x2 tiles", log);
        Assert.Contains("pixel metrics at the region's full resolution", log);
        foreach (string mode in new[] { "musc", "stream" })
        {
            var m = r.GetProperty("modes").GetProperty(mode);
            Assert.Equal(16, m.GetProperty("frames_scored").GetInt32());
            foreach (string key in new[] { "image_auroc", "pixel_auroc", "pro" }) Assert.InRange(m.GetProperty(key).GetDouble(), 0, 1);
            // The heatmap shows the region, not the whole image.
            using var heatmap = OpenCvSharp.Cv2.ImRead(Path.Combine(tmp.Path, $"{mode}_false_positive_1.png"));
            Assert.Equal((1200, 900), (heatmap.Width, heatmap.Height));
        }
        Assert.Contains("4 tile positions' reservoirs", log);
    }

    [Fact]
    public void A_region_beyond_an_image_or_tiles_below_the_input_skip_that_frame_naming_why()
    {
        using var tmp = new TempFolder();
        var (_, log, r) = Run(tmp.Path, Shared.Data("mvtec_ad/bottle"), "--mode", "stream", "--limit", "4", "--batch", "2", "--roi", "0,0,600,600");
        Assert.Contains("the image is 512x512; --roi 0,0,600,600 reaches beyond it", log);
        Assert.Equal(4, r.GetProperty("modes").GetProperty("stream").GetProperty("frames_failed").GetInt32());
        using var tmp2 = new TempFolder();
        (_, log, _) = Run(tmp2.Path, Shared.Data("mvtec_ad/bottle"), "--mode", "stream", "--limit", "2", "--batch", "2", "--tiles", "3x3");
        Assert.Contains("cuts its 512x512 region into 171x171 tiles, smaller than the model's 224x224 input", log);
    }

    [Theory]
    [InlineData("--tiles", "0x2", "--tiles: '0x2' is not CxR")]
    [InlineData("--tiles", "3", "--tiles: '3' is not CxR")]
    [InlineData("--tile-overlap", "1", "--tile-overlap: 1 is a share of a tile")]
    [InlineData("--roi", "1,2,3", "--roi: '1,2,3' is not x,y,w,h")]
    [InlineData("--roi", "-1,0,10,10", "--roi: '-1,0,10,10' is not x,y,w,h")]
    [InlineData("--tile-refs", "nearest", "--tile-refs: 'nearest' is not position or pooled")]
    public void Tiling_options_out_of_range_are_refused_naming_the_option(string option, string value, string message)
    {
        var e = Assert.Throws<UsageException>(() => EvalOptions.Parse(["cat", option, value]));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void A_dump_of_square_grids_is_refused_for_a_tiled_run()
    {
        var e = Assert.Throws<UsageException>(() => EvalOptions.Parse(["cat", "--tiles", "2x2", "--dump"]));
        Assert.StartsWith("--dump writes the square patch grids of a whole-image run", e.Message);
    }

    [Fact]
    public void MuSc_reports_its_map_maximum_beside_RsCIN_and_the_dump_reproduces_it()
    {
        using var tmp = new TempFolder();
        var (exit, log, r) = Run(tmp.Path, Shared.Data("magnetic_tile/magnetic_tile"), "--mode", "musc,stream", "--limit", "32", "--batch", "32", "--dump");
        Assert.Equal(0, exit);
        var musc = r.GetProperty("modes").GetProperty("musc");
        double mapMax = musc.GetProperty("image_auroc_map_max").GetDouble();
        Assert.False(r.GetProperty("modes").GetProperty("stream").TryGetProperty("image_auroc_map_max", out _));

        // The dump holds each frame's reported image score and its patch grid: the AUROC of the grids'
        // maxima, counted pair by pair, is the map-maximum figure; the reported scores give image_auroc.
        using var grids = new BinaryReader(File.OpenRead(Path.Combine(tmp.Path, "grids_musc.bin")));
        using var masks = new BinaryReader(File.OpenRead(Path.Combine(tmp.Path, "masks.bin")));
        int n = grids.ReadInt32(), g = grids.ReadInt32();
        Assert.Equal(n, masks.ReadInt32());
        masks.ReadInt32();
        var labels = masks.ReadBytes(n);
        var reported = new float[n];
        var maxima = new float[n];
        for (int i = 0; i < n; i++)
        {
            reported[i] = grids.ReadSingle();
            maxima[i] = float.NegativeInfinity;
            for (int k = 0; k < g; k++) maxima[i] = Math.Max(maxima[i], grids.ReadSingle());
        }
        static double PairAuroc(float[] s, byte[] y)
        {
            double wins = 0;
            int pairs = 0;
            for (int i = 0; i < s.Length; i++)
            {
                for (int j = 0; j < s.Length; j++)
                {
                    if (y[i] == 0 || y[j] != 0) continue;
                    pairs++;
                    wins += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
                }
            }
            return wins / pairs;
        }
        Assert.Equal(PairAuroc(maxima, labels), mapMax, 1e-6); // results.json holds 6 decimals
        Assert.Equal(PairAuroc(reported, labels), musc.GetProperty("image_auroc").GetDouble(), 1e-6);
        // On this lot RsCIN and the map's maximum rank the frames differently, so the two figures are not one.
        Assert.NotEqual(Math.Round(mapMax, 6), Math.Round(musc.GetProperty("image_auroc").GetDouble(), 6));
        Assert.Contains("musc image AUROC by its map's maximum", log);
    }

    [Fact]
    public void A_category_without_masks_reports_null_pixel_metrics()
    {
        using var tmp = new TempFolder();
        var (_, _, r) = Run(tmp.Path, Shared.Data("mvtec_ad/bottle"), "--mode", "fslc", "--limit", "24", "--batch", "24");
        var m = r.GetProperty("modes").GetProperty("fslc");
        Assert.Equal(JsonValueKind.Null, m.GetProperty("pixel_auroc").ValueKind);
        Assert.Equal(JsonValueKind.Null, m.GetProperty("pro").ValueKind);
        Assert.True(m.GetProperty("image_auroc").GetDouble() >= 0.9);
    }

    [Fact]
    public void A_corrupt_image_is_named_and_the_run_goes_on()
    {
        using var tmp = new TempFolder();
        string category = Path.Combine(tmp.Path, "cat");
        string good = Path.Combine(category, "test", "good"), bad = Path.Combine(category, "test", "broken_large");
        Directory.CreateDirectory(good);
        Directory.CreateDirectory(bad);
        string src = Shared.Data("mvtec_ad/bottle/test");
        for (int i = 0; i < 6; i++) File.Copy(Path.Combine(src, "good", $"{i:000}.png"), Path.Combine(good, $"{i:000}.png"));
        for (int i = 0; i < 3; i++) File.Copy(Path.Combine(src, "broken_large", $"{i:000}.png"), Path.Combine(bad, $"{i:000}.png"));
        string corrupt = Path.Combine(good, "099.png");
        File.WriteAllBytes(corrupt, [0x89, 0x50, 0x4E, 0x47, 0, 0, 0]);

        var (exit, log, r) = Run(Path.Combine(tmp.Path, "out"), category, "--mode", "stream", "--batch", "4");
        Assert.Equal(0, exit);
        Assert.Contains(corrupt, log);
        var m = r.GetProperty("modes").GetProperty("stream");
        Assert.Equal(1, m.GetProperty("frames_failed").GetInt32());
        Assert.Equal(9, m.GetProperty("frames_scored").GetInt32());
    }

    [Theory]
    [InlineData(new string[0], "a category directory is required")]
    [InlineData(new[] { "x", "--mode", "fast" }, "'fast' is not musc, fslc, stream or all")]
    [InlineData(new[] { "x", "--batch", "1" }, "--batch: '1' is not an integer >= 2")]
    [InlineData(new[] { "x", "--degrees", "1,2" }, "'2' is not an odd integer")]
    [InlineData(new[] { "x", "--frobnicate" }, "unknown option '--frobnicate'")]
    public void Bad_arguments_say_what_is_wrong(string[] args, string expected)
    {
        var e = Assert.Throws<UsageException>(() => EvalOptions.Parse(args));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_missing_category_names_the_folder()
    {
        var e = Assert.Throws<UsageException>(() => Dataset.Load("/nowhere/bottle"));
        Assert.Contains("/nowhere/bottle", e.Message);
    }

    /// <summary>
    /// Glass in small: 6 good and 6 "edge" images, their masks as glass has them except that edge/001's is named
    /// as its image (001.png) and edge/002's is <paramref name="third"/>: "missing", or "empty" (all black).
    /// </summary>
    private static string SmallGlass(string root, string third)
    {
        string glass = Shared.Data("glass_industrial/glass");
        string cat = Path.Combine(root, "glass_" + third);
        foreach (string d in new[] { "test/good", "test/edge", "ground_truth/edge" }) Directory.CreateDirectory(Path.Combine(cat, d));
        for (int i = 0; i < 6; i++)
        {
            string name = $"{i:000}.png";
            File.CreateSymbolicLink(Path.Combine(cat, "test/good", name), Path.Combine(glass, "test/good", name));
            File.CreateSymbolicLink(Path.Combine(cat, "test/edge", name), Path.Combine(glass, "test/edge", name));
            string mask = Path.Combine(glass, "ground_truth/edge", $"{i:000}_mask.png");
            if (i == 1) File.CreateSymbolicLink(Path.Combine(cat, "ground_truth/edge", name), mask);
            else if (i == 2 && third == "empty")
            {
                using var m = OpenCvSharp.Cv2.ImRead(mask, OpenCvSharp.ImreadModes.Grayscale);
                using var black = new OpenCvSharp.Mat(m.Size(), OpenCvSharp.MatType.CV_8UC1, OpenCvSharp.Scalar.All(0));
                OpenCvSharp.Cv2.ImWrite(Path.Combine(cat, "ground_truth/edge", $"{i:000}_mask.png"), black);
            }
            else if (i != 2) File.CreateSymbolicLink(Path.Combine(cat, "ground_truth/edge", $"{i:000}_mask.png"), mask);
        }
        return cat;
    }

    [Fact]
    public void A_mask_named_as_its_image_is_found_and_a_defect_without_one_is_left_out_of_the_pixel_metrics()
    {
        using var tmp = new TempFolder();
        string withoutMask = SmallGlass(tmp.Path, "missing");
        var data = Dataset.Load(withoutMask);
        var byName = data.Frames.ToDictionary(f => f.Name);
        Assert.EndsWith("ground_truth/edge/001.png", byName["edge/001.png"].MaskPath);
        Assert.EndsWith("ground_truth/edge/000_mask.png", byName["edge/000.png"].MaskPath);
        Assert.Null(byName["edge/002.png"].MaskPath);
        Assert.Equal(["edge/002.png"], data.Frames.Where(f => f.LacksMask(data.HasMasks)).Select(f => f.Name));
        Assert.False(byName["good/002.png"].LacksMask(data.HasMasks));

        // The same frames in the same order score the same; only the pixel truth differs. Counted as all
        // normal (an empty mask), edge/002's defect is a false positive; left out, it is not counted at all.
        string[] args = ["--mode", "stream", "--batch", "12", "--score-dims", "128"];
        var (exitMissing, _, missing) = Run(Path.Combine(tmp.Path, "out_missing"), [withoutMask, .. args]);
        var (exitEmpty, _, empty) = Run(Path.Combine(tmp.Path, "out_empty"), [SmallGlass(tmp.Path, "empty"), .. args]);
        Assert.Equal((0, 0), (exitMissing, exitEmpty));
        Assert.Equal((1, 0), (missing.GetProperty("frames_without_mask").GetInt32(), empty.GetProperty("frames_without_mask").GetInt32()));
        var a = missing.GetProperty("modes").GetProperty("stream");
        var b = empty.GetProperty("modes").GetProperty("stream");
        Assert.Equal(b.GetProperty("image_auroc").GetDouble(), a.GetProperty("image_auroc").GetDouble());
        Assert.Equal(12, a.GetProperty("frames_scored").GetInt32());
        Assert.True(a.GetProperty("pixel_auroc").GetDouble() > b.GetProperty("pixel_auroc").GetDouble() + 1e-4,
            $"pixel AUROC left out {a.GetProperty("pixel_auroc")} against counted as normal {b.GetProperty("pixel_auroc")}");
    }

    [Fact]
    public void Line_order_is_a_seeded_shuffle()
    {
        var items = Enumerable.Range(0, 50).Select(i => new FrameItem($"/x/{i}.png", "good", null)).ToList();
        var a = Dataset.LineOrder(items, 3, 0);
        Assert.Equal(a, Dataset.LineOrder(items, 3, 0));
        Assert.NotEqual(a, Dataset.LineOrder(items, 4, 0));
        Assert.NotEqual(items, a);
        Assert.Equal(10, Dataset.LineOrder(items, 3, 10).Count);
    }
}
