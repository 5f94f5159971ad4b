using EdgeInspector.Configuration;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Imaging;
using EdgeInspector.Integration.Tests;
using OpenCvSharp;

namespace EdgeInspector.Service.Tests;

/// <summary>A region of interest and tiles, in one pipeline: what the backbone sees, and what a bad setting answers.</summary>
public partial class FaultTests
{
    [Fact]
    public void With_a_region_of_interest_the_backbone_sees_exactly_the_region_cut_out()
    {
        // The plain twin: the same region cut out by hand and given whole.
        var s = Settings(Path.GetTempPath());
        var roi = new PixelRect(100, 60, 300, 260);
        string file = Directory.GetFiles(Path.Combine(Shared.Data("mvtec_ad/bottle"), "train", "good"), "*.png").Order().First();
        using var frame = DecodedImage.FromFile(file);
        using var view = frame.Region(roi);
        using var cut = view.Clone();
        var withRoi = new FrameInspector(Backbone.Value, s.Engine, roi).Extract(frame)![0];
        var byHand = new FrameInspector(Backbone.Value, s.Engine).Extract(cut)![0];
        var whole = new FrameInspector(Backbone.Value, s.Engine).Extract(frame)![0];
        for (int v = 0; v < withRoi.Views.Length; v++) Assert.Equal(byHand.Views[v], withRoi.Views[v]);
        Assert.NotEqual(whole.Views[0], withRoi.Views[0]);
        Assert.Throws<ImageDecodeException>(() => frame.Region(new PixelRect(300, 0, 300, 100)));
    }

    [Fact]
    public void In_tiles_the_backbone_sees_each_tile_cut_out_and_the_tiles_of_a_frame_go_through_together()
    {
        // The plain twin: tile 3 of a 2 x 2 cut (no overlap) of a 512 x 512 bottle is its bottom-right 256 x 256.
        var s = Settings(Path.GetTempPath());
        var tiled = s.Engine with { Tiles = new TileSettings { Cols = 2, Rows = 2, Overlap = 0 } };
        string file = Directory.GetFiles(Path.Combine(Shared.Data("mvtec_ad/bottle"), "train", "good"), "*.png").Order().First();
        using var frame = DecodedImage.FromFile(file);
        using var view = frame.Region(new PixelRect(256, 256, 256, 256));
        using var corner = view.Clone();
        var inspector = new FrameInspector(Backbone.Value, tiled);
        var tiles = inspector.Extract(frame)!;
        Assert.Equal(4, tiles.Length);
        var byHand = new FrameInspector(Backbone.Value, s.Engine).Extract(corner)![0];
        for (int v = 0; v < byHand.Views.Length; v++) Assert.Equal(byHand.Views[v], tiles[3].Views[v]);
        Assert.NotEqual(tiles[0].Views[0], tiles[3].Views[0]);
        Assert.Equal("whole frame in 2x2 tiles, overlap 0, position", inspector.RegionKey);
    }

    [Fact]
    public async Task A_tiled_camera_scores_each_part_over_its_stitched_tiles_and_shows_one_heatmap_of_the_whole_part()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 6);
        var link = new FakeLink();
        FrameInspector? made = null;
        await using var run = Start(folder, link, (b, e) =>
        {
            made = new FrameInspector(b, e with { Tiles = new TileSettings { Cols = 2, Rows = 2, Overlap = 0.25 } });
            made.SeedKnownGood(folder);
            return made;
        });
        await run.Settled(6);
        var verdicts = link.Verdicts();
        Assert.Equal(6, verdicts.Count);
        Assert.All(verdicts, v => Assert.Contains(v.GetProperty("verdict").GetString(), new[] { "pass", "unsure", "fail" }));
        Assert.All(verdicts, v => Assert.True(double.IsFinite(v.GetProperty("calibrated").GetDouble())));
        var jpeg = await link.FirstHeatmap(TimeSpan.FromSeconds(30));
        using var heatmap = Cv2.ImDecode(jpeg, ImreadModes.Color);
        Assert.Equal((512, 512), (heatmap.Width, heatmap.Height));
        // One engine per tile position, each seeded with its tile of the six known-good parts.
        Assert.Equal(4, made!.Engine.Engines.Count);
        Assert.All(made.Engine.Engines, e => Assert.True(e.IsWarm));
    }

    [Fact]
    public async Task Tiles_below_the_models_input_answer_every_frame_error_naming_the_setting()
    {
        // 3 x 3 tiles of a 512 x 512 bottle, overlap 0.25: 205 x 205 pixels each, below 224.
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 4);
        var link = new FakeLink();
        await using var run = Start(folder, link, (b, e) => new FrameInspector(b, e with { Tiles = new TileSettings { Cols = 3, Rows = 3, Overlap = 0.25 } }));
        await run.Settled(4);
        Assert.All(link.Verdicts(), v =>
        {
            Assert.Equal("error", v.GetProperty("verdict").GetString());
            Assert.Contains("engine.tiles 3x3 cuts its 512×512 region into 205×205 tiles, smaller than the model's 224×224 input", v.GetProperty("error").GetString());
        });
    }

    [Fact]
    public async Task A_region_of_interest_beyond_the_frame_answers_every_frame_error_naming_the_field_and_never_a_pass()
    {
        // The replayed bottles are 512 x 512; the region asks for 600 x 600.
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 6);
        var link = new FakeLink();
        await using var run = Start(folder, link, (b, e) => new FrameInspector(b, e, new PixelRect(0, 0, 600, 600)));
        await run.Settled(6);
        var verdicts = link.Verdicts();
        Assert.Equal(6, verdicts.Count);
        Assert.All(verdicts, v =>
        {
            Assert.Equal("error", v.GetProperty("verdict").GetString());
            Assert.Equal(4, v.GetProperty("error_code").GetInt32());
            Assert.Contains("the frame is 512×512; cameras[cam1].roi [0, 0, 600, 600] reaches beyond it", v.GetProperty("error").GetString());
        });
    }

    [Fact]
    public async Task A_region_of_interest_is_all_the_backbone_sees_and_the_heatmap_shows_the_whole_frame_with_the_region_outlined()
    {
        // Six copies of one bottle, and an engine seeded from them: every frame is scored and has a heatmap.
        using var tmp = new TempFolder();
        string folder = Path.Combine(tmp.Path, "replay");
        Directory.CreateDirectory(folder);
        string bottle = Directory.GetFiles(Path.Combine(Shared.Data("mvtec_ad/bottle"), "train", "good"), "*.png").Order().First();
        for (int i = 0; i < 6; i++) File.Copy(bottle, Path.Combine(folder, $"{i:D3}.png"));
        var link = new FakeLink();
        var roi = new PixelRect(128, 64, 256, 320);
        await using var run = Start(folder, link, (b, e) =>
        {
            var inspector = new FrameInspector(b, e, roi);
            inspector.SeedKnownGood(folder);
            return inspector;
        });
        await run.Settled(6);
        Assert.DoesNotContain(link.Verdicts(), v => v.GetProperty("verdict").GetString() == "error");
        // Heatmaps are published for every scored frame here (heatmap.publish: all).
        var jpeg = await link.FirstHeatmap(TimeSpan.FromSeconds(30));
        using var heatmap = Cv2.ImDecode(jpeg, ImreadModes.Color);
        // Kept for whoever wants to look (as the live view's screenshot is).
        Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "screenshots"));
        Cv2.ImWrite(Path.Combine(AppContext.BaseDirectory, "screenshots", "roi-heatmap.png"), heatmap);
        Assert.Equal((512, 512), (heatmap.Width, heatmap.Height)); // the whole frame, not the region
        using var original = Cv2.ImRead(bottle, ImreadModes.Color);
        // Outside the region the frame is as it was (JPEG aside); on its edge runs the yellow outline; inside, the map tints it.
        static double Diff(Mat a, Mat b, Rect r)
        {
            using var x = new Mat(a, r);
            using var y = new Mat(b, r);
            using var d = new Mat();
            Cv2.Absdiff(x, y, d);
            return Cv2.Mean(d).Val0 + Cv2.Mean(d).Val1 + Cv2.Mean(d).Val2;
        }
        Assert.True(Diff(heatmap, original, new Rect(0, 400, 100, 100)) < 15, "the frame outside the region was painted");
        Assert.True(Diff(heatmap, original, new Rect(200, 150, 100, 100)) > 30, "the region carries no heatmap");
        // The top edge of the region: yellow is high green and red, low blue.
        var edge = Enumerable.Range(62, 5).Select(y => heatmap.At<Vec3b>(y, 250)).MaxBy(p => p.Item1 + p.Item2 - 2 * p.Item0);
        Assert.True(edge.Item2 > 180 && edge.Item1 > 180 && edge.Item0 < 100, $"no yellow outline at the region's top edge: BGR {edge.Item0},{edge.Item1},{edge.Item2}");
    }
}
