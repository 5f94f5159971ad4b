using System.Diagnostics;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Imaging;
using EdgeInspector.Integration.Tests;

namespace EdgeInspector.Service.Tests;

/// <summary>The warm-up: the frames that arrive while its batch is scored, and what they teach the engine.</summary>
public partial class FaultTests
{
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
    /// <summary>Counts the images the backbone is run on.</summary>
    private sealed class CountingInspector(SharedBackbone b, EngineSettings e) : FrameInspector(b, e)
    {
        public int Images;

        public override FrameFeatures[]?[] Extract(IReadOnlyList<DecodedImage?> images, IReadOnlyList<TileGrid?> geometry)
        {
            foreach (var image in images) if (image is not null) Interlocked.Increment(ref Images);
            return base.Extract(images, geometry);
        }
    }

    [Fact]
    public async Task Frames_the_warm_up_cannot_keep_skip_the_backbone_while_its_build_runs_and_an_unreadable_one_is_still_an_error()
    {
        // At full speed (the replay waits only for room in the queue) with no room for a backlog, every frame
        // that comes while the warm-up build runs would only have its features let go: it is answered
        // warming_up without the backbone, which leaves the low-priority build the CPU. A frame that cannot
        // be read is still answered error: a failure never publishes a pass.
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, good: 30, extra: dir => File.WriteAllBytes(Path.Combine(dir, "006_corrupt.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]));
        var link = new FakeLink();
        var layout = Backbone.Value.Model.Layout;
        Func<InspectorSettings, InspectorSettings> tight = s => s with { Engine = s.Engine with { MemoryMb = (int)Preflight.Mb(Preflight.EngineBound(s, layout)) } };
        CountingInspector? counting = null;
        await using var run = Start(folder, link, (b, e) => counting = new CountingInspector(b, e), fps: 0, edit: tight);
        await run.Settled(31);
        var verdicts = link.Verdicts();
        Assert.Equal(31, verdicts.Count);
        var corrupt = Assert.Single(verdicts, v => v.GetProperty("verdict").GetString() == "error");
        Assert.Equal(4, corrupt.GetProperty("error_code").GetInt32());
        Assert.Contains("006_corrupt.png", corrupt.GetProperty("error").GetString());

        string? caughtUp = null;
        await Until(() => (caughtUp = run.Log.Lines.FirstOrDefault(l => l.Contains("answered warming_up were scored afterwards"))) is not null, "the caught-up line", run);
        output.WriteLine($"backbone ran on {counting!.Images} images; {caughtUp}");
        var m = System.Text.RegularExpressions.Regex.Match(caughtUp!, @"(\d+) more were not kept \(the warm-up backlog holds 0, as engine.memory_mb allows\), (\d+) of them answered without the backbone");
        Assert.True(m.Success, caughtUp);
        int notKept = int.Parse(m.Groups[1].Value), skipped = int.Parse(m.Groups[2].Value);
        Assert.InRange(skipped, 1, notKept);
        // Every readable frame went through the backbone once, or skipped it: none twice, none lost.
        Assert.Equal(30, counting.Images + skipped);
    }
}
