using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Inference.Onnx;
using EdgeInspector.Imaging;
using EdgeInspector.Integration.Tests;
using EdgeInspector.Mqtt;
using Microsoft.Extensions.Logging;
using LogLevel = Microsoft.Extensions.Logging.LogLevel;
using OpenCvSharp;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// Faults injected into one camera pipeline's stages, in-process: real images through the real model,
/// with the link (the publisher seam) or the backbone replaced by one that fails on purpose. Each test
/// asserts the fault is logged with its exception and shown on the status within seconds, that no
/// failure publishes a pass, and that the counters balance: captured = answered + counted losses.
/// </summary>
public partial class FaultTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);
    private static readonly Lazy<SharedBackbone> Backbone = new(() => new SharedBackbone(new OnnxBackbone(SharedBackbone.OptionsFrom(Settings(Path.GetTempPath()).Model))));

    private static InspectorSettings Settings(string folder, string dir = "/tmp", double fps = 8, int deadlineMs = 20000) =>
        ConfigLoader.Parse(Yaml.Config(Yaml.Replay(folder, fps, loop: false), Yaml.Broker(1), dir).Replace("  batch: 8", "  batch: 4").Replace("deadline_ms: 20000", $"deadline_ms: {deadlineMs}"), "fault-test.yaml", dir);

    /// <summary>Bottle images in a replay folder, with extra files written by <paramref name="extra"/>.</summary>
    private static string Folder(string root, int good, Action<string>? extra = null)
    {
        string dir = Path.Combine(root, "replay");
        Directory.CreateDirectory(dir);
        int i = 0;
        foreach (string f in Directory.GetFiles(Path.Combine(Shared.Data("mvtec_ad/bottle"), "train", "good"), "*.png").Order().Take(good))
        {
            File.Copy(f, Path.Combine(dir, $"{i++:D3}_good.png"));
        }
        extra?.Invoke(dir);
        return dir;
    }

    private sealed class Run : IAsyncDisposable
    {
        public required CameraPipeline Pipeline { get; init; }
        public required FakeLink Link { get; init; }
        public required ListLogger Log { get; init; }
        public string? Fatal;

        /// <summary>Waits until every captured frame is accounted for (answered or counted lost).</summary>
        public async Task Settled(int frames)
        {
            var sw = Stopwatch.StartNew();
            while (Answered + Pipeline.Counters.VerdictsUnpublished < frames || Pipeline.Counters.Frames < frames)
            {
                if (sw.Elapsed > Long) Assert.Fail($"{Pipeline.Counters.Frames} captured, {Answered} answered, {Pipeline.Counters.VerdictsUnpublished} lost after {Long.TotalSeconds} s\n{string.Join("\n", Log.Lines)}");
                await Task.Delay(50);
            }
        }

        public long Answered => Pipeline.Counters.Answered;

        public ValueTask DisposeAsync() => Pipeline.DisposeAsync();
    }

    private static Run Start(string folder, FakeLink link, Func<SharedBackbone, EngineSettings, FrameInspector>? inspector = null, double fps = 8, int deadlineMs = 20000,
        Func<InspectorSettings, InspectorSettings>? edit = null)
    {
        // The spool, snapshot, logs and archive go to the test's own folder: no state carries from one test to the next.
        var s = Settings(folder, Path.GetDirectoryName(folder)!, fps, deadlineMs);
        if (edit is not null) s = edit(s);
        var cam = s.Cameras[0];
        var log = new ListLogger();
        var engine = inspector?.Invoke(Backbone.Value, s.Engine) ?? new FrameInspector(Backbone.Value, s.Engine);
        Run? run = null;
        var pipeline = new CameraPipeline(cam, new LiveSettings(s, 1), engine, (_, _) => new FolderReplaySource(cam.Replay.Folder, cam.Replay.Fps, false),
            handler => { link.Handler = handler; return link; }, new Topics("edgeinspector", "testline"), Backbone.Value.Model.ModelHash, new CameraState(1, cam.Recipe), log, reason => run!.Fatal = reason);
        run = new Run { Pipeline = pipeline, Link = link, Log = log };
        pipeline.Start(null);
        return run;
    }

    private static async Task<TimeSpan> Until(Func<bool> done, string what, Run run)
    {
        var sw = Stopwatch.StartNew();
        while (!done())
        {
            if (sw.Elapsed > Long) Assert.Fail($"timed out waiting for {what}\n{string.Join("\n", run.Log.Lines)}");
            await Task.Delay(20);
        }
        return sw.Elapsed;
    }

    [Fact]
    public async Task Every_frame_answered_warming_up_is_scored_afterwards_and_no_live_frame_is_made_late()
    {
        // The frames that arrive while the warm-up batch is scored wait, and are pushed into the engine
        // only while no live frame is queued. None may be lost to the engine, and none may push a live
        // frame past its deadline.
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, good: 20);
        var link = new FakeLink();
        await using var run = Start(folder, link);
        await run.Settled(20);
        var kinds = link.Verdicts().Select(v => v.GetProperty("verdict").GetString()).ToList();
        Assert.Equal(20, kinds.Count);
        Assert.DoesNotContain("timeout", kinds);
        Assert.DoesNotContain("dropped", kinds);
        int waited = kinds.Count(k => k == "warming_up");
        Assert.True(waited >= 4, $"{waited} frames answered warming_up"); // the first batch at least
        var sw = Stopwatch.StartNew();
        string? line = null;
        while (line is null && sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            line = run.Log.Lines.FirstOrDefault(l => l.Contains("answered warming_up were scored afterwards"));
            await Task.Delay(50);
        }
        Assert.NotNull(line);
        // "<camera>: N frame(s) answered warming_up were scored afterwards": the batch (all of it answered
        // warming_up, the frame that completed it too) and every frame that waited out its scoring.
        int scored = int.Parse(System.Text.RegularExpressions.Regex.Match(line!, @"(\d+) frame\(s\) answered warming_up").Groups[1].Value);
        Assert.Equal(waited, scored);
    }

    [Fact]
    public async Task Frames_that_arrive_during_the_warm_up_wait_to_teach_the_engine_only_within_engine_memory_mb()
    {
        // engine.memory_mb set to the engine's own bound, rounded up to a megabyte: less than one more
        // frame's features (2.4 MB) is left, so no frame may wait out the warm-up. Each is still answered
        // warming_up, and only its features are let go: the caught-up line counts the batch as scored and
        // every later warming_up frame as not kept.
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, good: 20);
        var link = new FakeLink();
        var layout = Backbone.Value.Model.Layout;
        Func<InspectorSettings, InspectorSettings> tight = s => s with { Engine = s.Engine with { MemoryMb = (int)Preflight.Mb(Preflight.EngineBound(s, layout)) } };
        var settings = tight(Settings(folder));
        Assert.Null(Preflight.EngineMemory(settings, layout)); // the engine itself fits
        Assert.Equal(0, Preflight.WarmupBacklog(settings, layout));
        Assert.True(Preflight.WarmupBacklog(Settings(folder), layout) > 20); // at the default limit every frame here could wait

        await using var run = Start(folder, link, fps: 20, edit: tight);
        await run.Settled(20);
        var kinds = link.Verdicts().Select(v => v.GetProperty("verdict").GetString()).ToList();
        Assert.Equal(20, kinds.Count);
        Assert.DoesNotContain("timeout", kinds);
        int waited = kinds.Count(k => k == "warming_up");
        string? caughtUp = null;
        await Until(() => (caughtUp = run.Log.Lines.FirstOrDefault(l => l.Contains("answered warming_up were scored afterwards"))) is not null, "the caught-up line", run);
        string line = caughtUp!;
        output.WriteLine($"{waited} answered warming_up; {line}");
        var m = System.Text.RegularExpressions.Regex.Match(line, @"(\d+) frame\(s\) answered warming_up were scored afterwards, \d+ of them would have failed; (\d+) more were not kept \(the warm-up backlog holds 0,");
        Assert.True(m.Success, line);
        Assert.Equal(settings.Engine.Options.Batch, int.Parse(m.Groups[1].Value)); // the batch alone
        Assert.Equal(waited - settings.Engine.Options.Batch, int.Parse(m.Groups[2].Value));
        Assert.Equal(waited > settings.Engine.Options.Batch, run.Log.Lines.Any(l => l.Contains("the warm-up backlog is full (0 frame(s)")));
    }

    [Fact]
    public async Task A_publisher_that_throws_loses_only_those_verdicts_counted_shown_and_logged_and_verdicts_resume()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 14);
        // The 4th to 6th verdicts handed to the link throw (as a full spool disk once did).
        int verdictCalls = 0;
        var link = new FakeLink { Throw = m => m.Topic.EndsWith("/verdict") && Interlocked.Increment(ref verdictCalls) is >= 4 and <= 6 };
        await using var run = Start(folder, link);
        var report = await Until(() => run.Pipeline.Counters.VerdictsUnpublished > 0, "the first lost verdict", run);
        // Shown at once: the status says degraded, naming the publish stage.
        run.Pipeline.StatusNow();
        var status = link.Status!.Value;
        Assert.Equal("degraded", status.GetProperty("state").GetString());
        Assert.Equal("degraded", run.Pipeline.Health.State);
        Assert.Contains("frame", status.GetProperty("stages").GetProperty("publish").GetProperty("last_error").GetString());
        Assert.True(status.GetProperty("stages").GetProperty("publish").GetProperty("faults").GetInt64() >= 1);
        Assert.Contains(run.Log.Entries, e => e.Level == LogLevel.Error && e.Exception is IOException && e.Message.Contains("lost"));

        await run.Settled(14);
        var verdicts = link.Verdicts();
        Assert.Equal(3, run.Pipeline.Counters.VerdictsUnpublished);
        Assert.Equal(11, verdicts.Count);
        // Frames 4–6 are the ones lost; everything after them was published, in order.
        Assert.Equal([1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14], verdicts.Select(v => v.GetProperty("frame_id").GetInt64()));
        // Captured = answered + counted losses.
        Assert.Equal(run.Pipeline.Counters.Frames, run.Answered + run.Pipeline.Counters.VerdictsUnpublished);
        run.Pipeline.StatusNow();
        var d = link.Status!.Value.GetProperty("delivery");
        Assert.Equal(3, d.GetProperty("verdicts_unpublished").GetInt64());
        Assert.True(report < TimeSpan.FromSeconds(30), $"reported after {report}");
        output.WriteLine($"throwing publisher: first loss counted {report.TotalSeconds:0.00} s after start; frames {run.Pipeline.Counters.Frames} = answered {run.Answered} + unpublished {run.Pipeline.Counters.VerdictsUnpublished}");
    }

    [Fact]
    public async Task A_link_loop_that_throws_is_logged_at_once_restarted_and_the_watchdog_waits_for_it()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 10);
        var link = new FakeLink { RunFailures = 2 };
        await using var run = Start(folder, link);
        var seen = await Until(() => run.Log.Entries.Any(e => e.Level == LogLevel.Critical), "the stage failure in the log", run);
        Assert.True(seen < TimeSpan.FromSeconds(5), $"logged after {seen}");
        var critical = run.Log.Entries.First(e => e.Level == LogLevel.Critical);
        Assert.IsType<InvalidOperationException>(critical.Exception);
        Assert.Contains("publish", critical.Message);
        // While the stage waits to restart, the status is not online and the watchdog gets no "moving".
        Assert.Equal("restarting", run.Pipeline.Health.Snapshot()["publish"].State);
        Assert.Equal("degraded", run.Pipeline.Health.State);
        Assert.False(run.Pipeline.IsMoving(TimeSpan.FromMinutes(1)));
        // Two failures, two restarts (1 s then 2 s back-off); then it runs and verdicts flow.
        await Until(() => link.RunStarts == 3, "the third start of the link loop", run);
        await Until(() => run.Pipeline.Health.AllRunning, "every stage running", run);
        Assert.True(run.Pipeline.IsMoving(TimeSpan.FromMinutes(1)));
        await run.Settled(10);
        Assert.Equal(10, link.Verdicts().Count);
        Assert.Null(run.Fatal);
        Assert.Equal(2, run.Log.Entries.Count(e => e.Level == LogLevel.Critical));
        output.WriteLine($"throwing link loop: logged critical {seen.TotalSeconds:0.00} s after start; restarted twice; frames {run.Pipeline.Counters.Frames} = answered {run.Answered} + unpublished {run.Pipeline.Counters.VerdictsUnpublished}");
    }

    [Fact]
    public async Task A_stage_that_keeps_failing_stops_the_service_for_its_supervisor()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 4);
        var link = new FakeLink { RunFailures = int.MaxValue };
        await using var run = Start(folder, link);
        // 5 failures within a minute (back-off 1 + 2 + 4 + 8 s): no more restarts, the service stops.
        var fatal = await Until(() => run.Fatal is not null, "the fatal call", run);
        output.WriteLine($"link loop failing for good: fatal after {fatal.TotalSeconds:0.0} s and {link.RunStarts} starts");
        Assert.Equal(StageHealth.MaxRestarts, link.RunStarts);
        Assert.Contains("publish", run.Fatal);
        Assert.Equal("failed", run.Pipeline.Health.State);
        Assert.False(run.Pipeline.IsMoving(TimeSpan.FromMinutes(1)));
        run.Pipeline.StatusNow();
        Assert.Equal("failed", link.Status!.Value.GetProperty("state").GetString());
    }

    [Fact]
    public async Task A_backbone_that_throws_answers_every_frame_error_and_never_a_pass()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 8);
        var link = new FakeLink();
        await using var run = Start(folder, link, (b, e) => new ThrowingInspector(b, e));
        var report = await Until(() => run.Pipeline.Health.State == "degraded", "the status to leave online", run);
        Assert.True(report < TimeSpan.FromSeconds(10), $"reported after {report}");
        await run.Settled(8);
        var verdicts = link.Verdicts();
        Assert.Equal(8, verdicts.Count);
        Assert.All(verdicts, v => Assert.Equal("error", v.GetProperty("verdict").GetString()));
        Assert.All(verdicts, v => Assert.True(v.GetProperty("reject").GetBoolean()));
        Assert.All(verdicts, v => Assert.Contains("injected", v.GetProperty("error").GetString()));
        Assert.Equal(run.Pipeline.Counters.Frames, run.Pipeline.Counters.Errors);
        run.Pipeline.StatusNow();
        var infer = link.Status!.Value.GetProperty("stages").GetProperty("infer");
        Assert.True(infer.GetProperty("faults").GetInt64() >= 1);
        Assert.Equal("running", infer.GetProperty("state").GetString()); // it survived the fault
        // A flood of identical failures is logged once per period, not once per batch.
        Assert.InRange(run.Log.Entries.Count(e => e.Level == LogLevel.Error && e.Message.Contains("backbone failed on frames")), 1, 2);
        output.WriteLine($"throwing backbone: degraded {report.TotalSeconds:0.00} s after start; frames {run.Pipeline.Counters.Frames} = errors {run.Pipeline.Counters.Errors}");
    }

    [Fact]
    public async Task A_frame_the_decoder_cannot_read_faithfully_is_answered_error_naming_its_format()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 6, dir =>
        {
            using (var f = new Mat(64, 64, MatType.CV_32FC1, new Scalar(0.5))) Cv2.ImWrite(Path.Combine(dir, "003_float.tiff"), f);
            using (var g = new Mat(64, 64, MatType.CV_16UC1, new Scalar(30000))) Cv2.ImWrite(Path.Combine(dir, "004_gray16.png"), g);
        });
        var link = new FakeLink();
        await using var run = Start(folder, link);
        await run.Settled(8);
        var verdicts = link.Verdicts().ToDictionary(v => v.GetProperty("part_id").GetString()!);
        var floatFrame = verdicts["003_float"];
        Assert.Equal("error", floatFrame.GetProperty("verdict").GetString());
        Assert.Contains("32-bit float", floatFrame.GetProperty("error").GetString());
        Assert.NotEqual("error", verdicts["004_gray16"].GetProperty("verdict").GetString());
        Assert.Equal(1, run.Pipeline.Counters.Errors);
        // A bad frame is bad input, not a fault of the service: the status stays online.
        Assert.Equal("online", run.Pipeline.Health.State);
    }

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

    [Fact]
    public async Task Every_message_on_the_command_topic_is_answered_and_a_refusal_echoes_nothing_large()
    {
        using var tmp = new TempFolder();
        var link = new FakeLink();
        await using var run = Start(Folder(tmp.Path, 2), link);
        const string topic = "edgeinspector/testline/cam1/command";
        string huge = "{\"id\":\"" + new string('x', 1024 * 1024) + "\",\"command\":\"reset_coreset\"}";
        var cases = new (string Payload, string Reason)[]
        {
            ("{\"id\":\"1\",\"command\":5}", "'command' must be a string, not a number"),
            ("[1,2]", "a JSON array is not a command"),
            ("null", "a JSON null is not a command"),
            ("{\"id\":\"4\",\"command\":\"switch_recipe\",\"recipe\":7}", "'recipe' must be a string, not a number"),
            ("reset please", "not JSON"),
            ("{\"id\":\"6\"}", "no 'command' field"),
            ("{\"id\":\"7\",\"command\":\"launch\"}", "unknown command 'launch'"),
            (huge, $"a command of {huge.Length} bytes is refused"),
        };
        foreach (var (payload, _) in cases) await link.Handler!(topic, Encoding.UTF8.GetBytes(payload));
        await link.Handler!(topic, Encoding.UTF8.GetBytes("{\"id\":42,\"command\":\"reset_coreset\"}"));
        await Until(() => link.Acks().Count == cases.Length + 1, "an acknowledgement for every command", run);
        var acks = link.Acks();
        for (int i = 0; i < cases.Length; i++)
        {
            Assert.False(acks[i].GetProperty("ok").GetBoolean());
            Assert.Contains(cases[i].Reason, acks[i].GetProperty("message").GetString());
        }
        Assert.Equal(["1", "", "", "4", "", "6", "7", ""], acks.Take(cases.Length).Select(a => a.GetProperty("id").GetString()));
        // The valid one is applied by the inference loop and acknowledged ok, with its numeric id as text.
        Assert.True(acks[^1].GetProperty("ok").GetBoolean());
        Assert.Equal("42", acks[^1].GetProperty("id").GetString());
        int largest = link.Sent.Where(m => m.Topic.EndsWith("/command/ack")).Max(m => m.Payload.Length);
        Assert.True(largest < 1024, $"an acknowledgement of {largest} bytes");
        // Refusals are logged, but not one line each.
        Assert.InRange(run.Log.Entries.Count(e => e.Message.Contains("refused")), 1, 2);
    }

    [Fact]
    public async Task A_flood_of_part_ids_no_frame_takes_is_counted_and_summarised_not_logged_line_by_line()
    {
        using var tmp = new TempFolder();
        var link = new FakeLink();
        await using var run = Start(Folder(tmp.Path, 1), link);
        for (int i = 0; i < 20_000; i++) await link.Handler!("edgeinspector/testline/cam1/part", Encoding.UTF8.GetBytes($"P-{i}"));
        // At most 1,000 wait for frames; the rest are discarded and counted. (The one replayed frame
        // carries its file name and takes none.)
        Assert.Equal(19_000, run.Pipeline.Counters.PartIdsDiscarded);
        Assert.InRange(run.Log.Entries.Count(e => e.Level == LogLevel.Warning && e.Message.Contains("part id")), 1, 2);
        run.Pipeline.StatusNow();
        Assert.Equal(19_000, link.Status!.Value.GetProperty("delivery").GetProperty("part_ids_discarded").GetInt64());
    }

    /// <summary>The backbone failing on every call (a GPU fault, a model that cannot run).</summary>
    private sealed class ThrowingInspector(SharedBackbone b, EngineSettings e) : FrameInspector(b, e)
    {
        public override FrameFeatures[]?[] Extract(IReadOnlyList<DecodedImage?> images, IReadOnlyList<TileGrid?> geometry) => throw new InvalidOperationException("injected: the execution provider failed");
    }
}

/// <summary>A link that records what it is given, and fails on purpose when told.</summary>
internal sealed class FakeLink : IMessageLink
{
    public readonly ConcurrentQueue<OutgoingMessage> Sent = new();
    /// <summary>Enqueue throws (an IOException, as a full disk does) for the messages this selects.</summary>
    public Func<OutgoingMessage, bool>? Throw;
    /// <summary>How many times RunAsync throws before it runs.</summary>
    public int RunFailures;
    /// <summary>The pipeline's handler for messages on its subscribed topics (commands, part ids).</summary>
    public Func<string, byte[], Task>? Handler;

    public List<JsonElement> Acks() => [.. Sent.Where(m => m.Topic.EndsWith("/command/ack")).Select(m => JsonDocument.Parse(m.Payload).RootElement)];
    private int _runStarts;
    private volatile byte[]? _status;
    private long _enqueued;

    public int RunStarts => Volatile.Read(ref _runStarts);

    public JsonElement? Status => _status is { } s ? JsonDocument.Parse(s).RootElement : null;

    public List<JsonElement> Verdicts() => [.. Sent.Where(m => m.Topic.EndsWith("/verdict")).Select(m => JsonDocument.Parse(m.Payload).RootElement)];

    /// <summary>The first heatmap published (JPEG), waiting up to <paramref name="limit"/>; fails the test if none comes.</summary>
    public async Task<byte[]> FirstHeatmap(TimeSpan limit)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < limit)
        {
            if (Sent.FirstOrDefault(m => m.Topic.EndsWith("/heatmap"))?.Payload is { } jpeg) return jpeg;
            await Task.Delay(50);
        }
        Assert.Fail($"no heatmap was published within {limit.TotalSeconds:0} s");
        return [];
    }

    public void Enqueue(OutgoingMessage message)
    {
        if (Throw?.Invoke(message) == true) throw new IOException("injected: No space left on device");
        Interlocked.Increment(ref _enqueued);
        Sent.Enqueue(message);
    }

    public bool TryEnqueueBestEffort(OutgoingMessage message)
    {
        Sent.Enqueue(message);
        return true;
    }

    public void SetStatus(byte[] payload) => _status = payload;

    public async Task RunAsync(CancellationToken ct)
    {
        if (Interlocked.Increment(ref _runStarts) <= RunFailures)
        {
            await Task.Delay(20, ct);
            throw new InvalidOperationException("injected: the delivery loop failed");
        }
        while (!ct.IsCancellationRequested && !_stop) await Task.Delay(20, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private volatile bool _stop;

    public void StopWhenIdle() => _stop = true;

    public LinkCounters Counters => new(Interlocked.Read(ref _enqueued), 0, Interlocked.Read(ref _enqueued), 0, 0, 0, 0, 0, 0, 0, true);

    public string? LastError => null;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>Keeps every log entry: level, message and exception.</summary>
internal sealed class ListLogger : ILogger
{
    public readonly record struct Entry(LogLevel Level, string Message, Exception? Exception);

    private readonly ConcurrentQueue<Entry> _entries = new();

    public IReadOnlyList<Entry> Entries => [.. _entries];

    public IEnumerable<string> Lines => _entries.Select(e => $"{e.Level}: {e.Message} {e.Exception?.Message}");

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        => _entries.Enqueue(new Entry(logLevel, formatter(state, exception), exception));
}
