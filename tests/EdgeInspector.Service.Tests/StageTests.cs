using System.Threading.Channels;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Verdicts;
using EdgeInspector.Integration.Tests;

namespace EdgeInspector.Service.Tests;

/// <summary>Stages driven alone: acquisition with a fake camera, sequencing with a fake publisher (link).</summary>
public class StageTests
{
    /// <summary>A camera that hands out <paramref name="count"/> frames at once, then ends.</summary>
    private sealed class FakeCamera(int count) : IFrameSource
    {
        private int _next;

        public string Description => "fake";

        public Task OpenAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public ValueTask<CapturedFrame?> ReadAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult(_next++ < count ? CapturedFrame.Encoded([1, 2, 3], $"fake #{_next}", $"P{_next}", System.Diagnostics.Stopwatch.GetTimestamp(), DateTimeOffset.UtcNow) : null);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private static (AcquisitionStage Stage, Channel<Work> Work, FrameEvents Events, PipelineCounters Counters) Acquisition(string policy, int frames)
    {
        using var tmp = new TempFolder();
        var s = ConfigLoader.Parse($"line: l\ncameras:\n  - name: c\n    source: replay\n    replay:\n      folder: {tmp.Path}\nmodel:\n  path: {Yaml.Model}\nengine:\n  drop_policy: {policy}\n", "t.yaml", tmp.Path);
        var work = Channel.CreateBounded<Work>(new BoundedChannelOptions(2) { FullMode = BoundedChannelFullMode.Wait });
        var events = new FrameEvents();
        var counters = new PipelineCounters();
        var log = new ListLogger();
        var stage = new AcquisitionStage(s.Cameras[0], () => new FakeCamera(frames), new SourceCounters(), () => new LiveSettings(s, 1),
            new CameraState(1, ""), work, events, new PartIdQueue("c", counters, log), counters, log);
        return (stage, work, events, counters);
    }

    private static List<FrameEvents.Event> Drain(FrameEvents events)
    {
        var list = new List<FrameEvents.Event>();
        while (events.Reader.TryRead(out var e)) list.Add(e);
        return list;
    }

    [Theory]
    [InlineData("drop_oldest", new long[] { 1, 2, 3, 4 }, new long[] { 5, 6 })]
    [InlineData("drop_newest", new long[] { 3, 4, 5, 6 }, new long[] { 1, 2 })]
    public async Task A_full_queue_answers_the_frames_its_policy_drops_and_registers_every_frame_first(string policy, long[] dropped, long[] queued)
    {
        var (stage, work, events, counters) = Acquisition(policy, 6);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await stage.RunAsync(cts.Token); // the camera ends; the stage waits until cancelled
        var all = Drain(events);
        // Each frame is registered before anything completes it, in capture order, with its part id.
        var registered = all.OfType<FrameEvents.Registered>().ToList();
        Assert.Equal([1, 2, 3, 4, 5, 6], registered.Select(r => r.Meta.Id));
        Assert.Equal(["P1", "P2", "P3", "P4", "P5", "P6"], registered.Select(r => r.Meta.PartId));
        foreach (var c in all.OfType<FrameEvents.Completed>())
        {
            Assert.True(all.IndexOf(all.OfType<FrameEvents.Registered>().Single(r => r.Meta.Id == c.Id)) < all.IndexOf(c));
        }
        var completed = all.OfType<FrameEvents.Completed>().ToList();
        Assert.Equal(dropped, completed.Select(c => c.Id).Order());
        Assert.All(completed, c => Assert.Equal(VerdictKind.Dropped, c.Outcome.Kind));
        var left = new List<long>();
        while (work.Reader.TryRead(out var w)) left.Add(w.Meta.Id);
        Assert.Equal(queued, left);
        Assert.Equal(6, counters.Frames);
    }

    [Fact]
    public async Task The_sequencer_publishes_in_capture_order_through_the_link_and_answers_a_missed_deadline_timeout()
    {
        using var tmp = new TempFolder();
        var s = ConfigLoader.Parse($"line: l\ncameras:\n  - name: c\n    source: replay\n    replay:\n      folder: {tmp.Path}\nmodel:\n  path: {Yaml.Model}\n", "t.yaml", tmp.Path);
        var link = new FakeLink();
        var counters = new PipelineCounters();
        var log = new ListLogger();
        var state = new CameraState(7, "");
        var publisher = new VerdictPublisher(link, new Topics("p", "l"), "c", new string('0', 64), state, () => new LiveSettings(s, 1),
            counters, new StageHealth(Stages.All), new LatencyWindow(16), [state.Feed], log);
        var events = new FrameEvents();
        var stage = new SequencingStage("c", events, publisher, () => new LiveSettings(s, 1), counters, log);
        using var cts = new CancellationTokenSource();
        var loop = stage.RunAsync(cts.Token);
        long now = System.Diagnostics.Stopwatch.GetTimestamp(), second = System.Diagnostics.Stopwatch.Frequency;
        for (int id = 1; id <= 3; id++) events.Register(new FrameMeta(id, $"P{id}", DateTimeOffset.UtcNow, now), id == 2 ? now + second / 5 : now + 60 * second);
        // Results arrive out of order, and frame 2's never does.
        events.Complete(3, new FrameOutcome { Kind = VerdictKind.Pass, Calibrated = 0.1f });
        events.Complete(1, new FrameOutcome { Kind = VerdictKind.Fail, Calibrated = 5f });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (link.Verdicts().Count < 3 && sw.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
        var verdicts = link.Verdicts();
        Assert.Equal([1, 2, 3], verdicts.Select(v => v.GetProperty("frame_id").GetInt64()));
        Assert.Equal(["fail", "timeout", "pass"], verdicts.Select(v => v.GetProperty("verdict").GetString()));
        Assert.All(verdicts, v => Assert.Equal(7, v.GetProperty("run_id").GetInt64()));
        Assert.True(verdicts[1].GetProperty("reject").GetBoolean()); // a timeout rejects by default
        Assert.Equal([0, 2, 0], verdicts.Select(v => v.GetProperty("error_code").GetInt32())); // the PLC's table: 2 = timeout
        // The live view is told of each verdict as published: newest first.
        Assert.Equal([3L, 2L, 1L], state.Feed.Recent().Select(v => v.FrameId));
        // The late result for frame 2 is counted, never published twice.
        events.Complete(2, new FrameOutcome { Kind = VerdictKind.Pass });
        sw.Restart();
        while (counters.LateResults == 0 && sw.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(20);
        Assert.Equal(1, counters.LateResults);
        Assert.Equal(3, link.Verdicts().Count);
        Assert.Equal(["1,1", "2,1", "3,0"], link.Sent.Where(m => m.Topic.EndsWith("/reject")).Select(m => System.Text.Encoding.ASCII.GetString(m.Payload)));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => loop); // a cancelled loop ends by throwing; its supervisor expects that
    }
}
