using EdgeInspector.Configuration;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Imaging;
using EdgeInspector.Integration.Tests;

namespace EdgeInspector.Service.Tests;

/// <summary>Sustained overload: frames arrive faster than the backbone takes them.</summary>
public partial class FaultTests
{
    [Fact]
    public async Task Under_sustained_overload_frames_that_cannot_make_their_deadline_are_answered_at_once_and_the_rest_are_scored_in_time()
    {
        // 20 fps into a backbone that takes over 250 ms a frame, with a 3 s deadline. A queue that takes
        // frames first in, first out (16 deep) waits ever longer: soon every frame taken has already waited
        // nearly its deadline and is answered late, so nothing is scored in time. With
        // load shedding, a frame that cannot make its deadline at the measured time per frame is answered
        // timeout at once, and the time goes to a frame that can.
        const int frames = 192, deadlineMs = 3000;
        using var tmp = new TempFolder();
        // The 32 good bottles, six times over.
        string folder = Folder(tmp.Path, frames / 6, dir =>
        {
            foreach (string f in Directory.GetFiles(dir))
            {
                for (int copy = 1; copy < 6; copy++) File.Copy(f, Path.Combine(dir, $"{copy}_{Path.GetFileName(f)}"));
            }
        });
        var link = new FakeLink();
        // The backbone's first calls at each batch size are slow; the service makes them before any camera starts.
        new FrameInspector(Backbone.Value, Settings(folder).Engine).Prime(2, 2);
        await using var run = Start(folder, link, (b, e) => new SlowInspector(b, e, TimeSpan.FromMilliseconds(250)), fps: 20, deadlineMs);
        await Until(() => link.Verdicts().Count >= frames / 2, "half the verdicts", run);
        long lateAtHalf = run.Pipeline.Counters.LateResults;
        await run.Settled(frames);
        var verdicts = link.Verdicts();
        Assert.Equal(frames, verdicts.Count);
        var kinds = verdicts.Select(v => v.GetProperty("verdict").GetString()).ToList();
        // The second half is steady overload, past the first calls' costs and the warm-up: frames are
        // still answered in time there.
        int inTime = kinds.Skip(frames / 2).Count(k => k is "pass" or "fail" or "unsure" or "warming_up");
        var counters = run.Pipeline.Counters;
        output.WriteLine($"overload: {string.Join(" ", kinds.Select(k => k![..2]))}");
        output.WriteLine(string.Join("\n", run.Log.Lines.Where(l => !l.Contains("not started"))));
        output.WriteLine($"answered in time after frame {frames / 2}: {inTime}; shed {counters.Shed}, expired {counters.ExpiredUnscored}, late results {counters.LateResults} ({counters.LateResults - lateAtHalf} in the second half), dropped {counters.Dropped}");
        Assert.True(inTime >= 4, $"only {inTime} of the last {frames / 2} frames were answered in time");
        // A shed frame's timeout says why, and each is counted. (How many are shed rather than dropped by
        // the full queue depends on how loaded the machine is; the unit test pins the rule itself.)
        var notStarted = verdicts.Where(v => v.GetProperty("verdict").GetString() == "timeout" && v.GetProperty("error").GetString()!.StartsWith("not started")).ToList();
        Assert.Equal(counters.Shed, notStarted.Count);
        Assert.All(notStarted, v => Assert.True(v.GetProperty("reject").GetBoolean()));
        Assert.All(notStarted, v => Assert.Contains("could not be answered within the 3000 ms deadline", v.GetProperty("error").GetString()));
        // Frames taken are the ones that can make it: in the second half few, if any, finish after their deadline.
        Assert.True(counters.LateResults - lateAtHalf <= 2, $"{counters.LateResults - lateAtHalf} results came after their frame's deadline in the second half");
        run.Pipeline.StatusNow();
        Assert.Equal(counters.Shed, link.Status!.Value.GetProperty("queues").GetProperty("shed").GetInt64());
    }

    /// <summary>A backbone slower than the line: the real one, plus a fixed delay per image.</summary>
    private sealed class SlowInspector(SharedBackbone b, EngineSettings e, TimeSpan perImage) : FrameInspector(b, e)
    {
        public override FrameFeatures[]?[] Extract(IReadOnlyList<DecodedImage?> images, IReadOnlyList<TileGrid?> geometry)
        {
            Thread.Sleep(perImage * images.Count);
            return base.Extract(images, geometry);
        }
    }
}
