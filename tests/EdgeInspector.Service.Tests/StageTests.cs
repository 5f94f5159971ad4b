using System.Threading.Channels;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Tiling;
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

    /// <summary>
    /// A camera the PLC triggers: each read waits until the test allows one, then takes the next trigger
    /// and delivers a frame tagged with it, or, once <see cref="Lose"/> was called, fails as a lost camera.
    /// </summary>
    private sealed class TriggeredCamera(TriggerQueue triggers) : IFrameSource
    {
        private readonly SemaphoreSlim _reads = new(0);
        private volatile bool _lost;

        public string Description => "fake triggered";

        public Task OpenAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void AllowRead() => _reads.Release();

        public void Lose()
        {
            _lost = true;
            _reads.Release();
        }

        public async ValueTask<CapturedFrame?> ReadAsync(CancellationToken cancellationToken)
        {
            await _reads.WaitAsync(cancellationToken);
            if (_lost) throw new FrameSourceException("fake camera lost");
            string tag = await triggers.NextAsync(cancellationToken);
            return CapturedFrame.Encoded([1, 2, 3], "fake triggered", tag, System.Diagnostics.Stopwatch.GetTimestamp(), DateTimeOffset.UtcNow);
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>
    /// A camera the PLC triggers whose frame comes only when the test releases it, stop or not: a trigger
    /// it took has been fired at the camera, and its frame is on the wire.
    /// </summary>
    private sealed class SlowTriggeredCamera(TriggerQueue triggers) : IFrameSource
    {
        public TaskCompletionSource Taken { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Description => "fake slow triggered";

        public Task OpenAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public async ValueTask<CapturedFrame?> ReadAsync(CancellationToken cancellationToken)
        {
            string tag = await triggers.NextAsync(cancellationToken);
            Taken.TrySetResult();
            await Release.Task;
            return CapturedFrame.Encoded([1, 2, 3], "fake slow triggered", tag, System.Diagnostics.Stopwatch.GetTimestamp(), DateTimeOffset.UtcNow);
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private static (AcquisitionStage Stage, Channel<Work> Work, FrameEvents Events, PipelineCounters Counters) Acquisition(
        string policy, int frames, string trigger = "none", TriggerQueue? triggers = null, Func<IFrameSource>? source = null)
    {
        using var tmp = new TempFolder();
        var s = ConfigLoader.Parse($"line: l\ncameras:\n  - name: c\n    source: replay\n    replay:\n      folder: {tmp.Path}\n      trigger: {trigger}\nmodel:\n  path: {Yaml.Model}\nengine:\n  drop_policy: {policy}\n", "t.yaml", tmp.Path);
        var work = Channel.CreateBounded<Work>(new BoundedChannelOptions(2) { FullMode = BoundedChannelFullMode.Wait });
        var events = new FrameEvents();
        var counters = new PipelineCounters();
        var log = new ListLogger();
        var stage = new AcquisitionStage(s.Cameras[0], source ?? (() => new FakeCamera(frames)), new SourceCounters(), () => new LiveSettings(s, 1),
            new CameraState(1, ""), work, events, new PartIdQueue("c", counters, log), triggers ?? new TriggerQueue(), counters, log);
        return (stage, work, events, counters);
    }

    [Fact]
    public async Task Every_PLC_trigger_gets_its_frame_or_an_answer_for_its_part()
    {
        var triggers = new TriggerQueue(capacity: 2);
        var camera = new TriggeredCamera(triggers);
        var (stage, work, events, counters) = Acquisition("drop_oldest", 0, "plc", triggers, () => camera);
        // Not streaming yet: answered at once, camera lost.
        Assert.Null(stage.Trigger("A"));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var loop = stage.RunAsync(cts.Token);
        while (stage.State != "streaming") await Task.Delay(10, cts.Token);
        // Two wait for the camera; a third finds the queue full and is answered dropped.
        Assert.Null(stage.Trigger("B"));
        Assert.Null(stage.Trigger("C"));
        Assert.Null(stage.Trigger("D"));
        camera.AllowRead();
        var b = await work.Reader.ReadAsync(cts.Token);
        Assert.Equal("B", b.Meta.PartId);
        // The camera is lost with C still waiting: C is answered, not served by the camera that comes back.
        camera.Lose();
        while (stage.State != "lost") await Task.Delay(10, cts.Token);
        cts.Cancel();
        await loop;
        Assert.False(triggers.TryTake(out _));

        var all = Drain(events);
        var registered = all.OfType<FrameEvents.Registered>().ToList();
        Assert.Equal([1, 2, 3, 4], registered.Select(r => r.Meta.Id)); // in order, from two threads
        Assert.Equal(["A", "D", "B", "C"], registered.Select(r => r.Meta.PartId));
        var answered = all.OfType<FrameEvents.Completed>().ToDictionary(c => registered.Single(r => r.Meta.Id == c.Id).Meta.PartId!, c => c.Outcome);
        Assert.Equal(["A", "C", "D"], answered.Keys.Order());
        Assert.Equal((VerdictKind.Error, ErrorCode.CameraLost), (answered["A"].Kind, answered["A"].Cause));
        Assert.Equal((VerdictKind.Error, ErrorCode.CameraLost), (answered["C"].Kind, answered["C"].Cause));
        Assert.Equal(VerdictKind.Dropped, answered["D"].Kind);
        Assert.Contains("camera lost before its frame", answered["C"].Error);
        Assert.Equal(4, counters.Frames);

        // A camera that is not triggered by the PLC refuses a trigger, saying which setting would.
        var (free, _, freeEvents, _) = Acquisition("drop_oldest", 0);
        Assert.Equal("camera c is not triggered by the PLC (set replay.trigger: plc)", free.Trigger("X"));
        Assert.Empty(Drain(freeEvents));
    }

    [Fact]
    public async Task At_a_stop_the_trigger_the_camera_took_is_served_and_every_trigger_waiting_or_after_is_answered()
    {
        var triggers = new TriggerQueue();
        var camera = new SlowTriggeredCamera(triggers);
        var (stage, work, events, _) = Acquisition("drop_oldest", 0, "plc", triggers, () => camera);
        using var cts = new CancellationTokenSource();
        var loop = stage.RunAsync(cts.Token);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (stage.State != "streaming") await Task.Delay(10, limit.Token);
        Assert.Null(stage.Trigger("A"));
        await camera.Taken.Task.WaitAsync(limit.Token);
        Assert.Null(stage.Trigger("B")); // waits behind A

        cts.Cancel();
        await Task.Delay(300);
        Assert.False(loop.IsCompleted); // still serving A
        camera.Release.SetResult();
        await loop.WaitAsync(limit.Token);
        Assert.Equal("stopped", stage.State);
        Assert.Null(stage.Trigger("C")); // after the stop: answered at once, never queued
        Assert.False(triggers.TryTake(out _));

        Assert.True(work.Reader.TryRead(out var a));
        Assert.Equal("A", a.Meta.PartId);
        Assert.False(work.Reader.TryRead(out _));
        var all = Drain(events);
        var registered = all.OfType<FrameEvents.Registered>().ToList();
        Assert.Equal(["A", "B", "C"], registered.Select(r => r.Meta.PartId));
        var answered = all.OfType<FrameEvents.Completed>().ToDictionary(c => registered.Single(r => r.Meta.Id == c.Id).Meta.PartId!, c => c.Outcome);
        Assert.Equal(["B", "C"], answered.Keys.Order());
        Assert.All(answered.Values, o => Assert.Equal((VerdictKind.Error, ErrorCode.CameraLost), (o.Kind, o.Cause)));
        Assert.Contains("pipeline is stopping", answered["B"].Error);
        Assert.Contains("the camera is stopped, not streaming", answered["C"].Error);
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

    [Fact]
    public void A_failed_capture_is_answered_as_an_error_that_names_the_frame_and_why()
    {
        // A PLC-triggered frame that came incomplete travels as a failed capture, so its part is answered.
        using var frame = CapturedFrame.Failed("gige 127.0.0.1 trigger for part P-9", "P-9", "the frame for part P-9 arrived incomplete", 0, DateTimeOffset.UtcNow);
        Assert.Equal("P-9", frame.PartId);
        var e = Assert.Throws<EdgeInspector.Imaging.ImageDecodeException>(() => FrameDecoder.Decode(frame));
        Assert.Contains("gige 127.0.0.1 trigger for part P-9: the frame for part P-9 arrived incomplete", e.Message);
    }

    [Fact]
    public void The_warm_up_backlog_keeps_frames_up_to_its_capacity_in_order_and_lets_the_rest_go()
    {
        var layout = new FeatureLayout(2, 2, [new ViewSpec("t", 1, 4)], 4);
        var grid = TileGrid.Create(8, 8, 1, 1, 0);
        var released = new List<FrameFeatures[]>();
        var backlog = new WarmupBacklog(released.Add);
        var frames = new FrameFeatures[5][];
        for (int i = 0; i < frames.Length; i++) frames[i] = [new FrameFeatures(layout)];

        backlog.Open(2);
        Assert.True(backlog.Offer(1, frames[0], grid));
        Assert.True(backlog.Offer(2, frames[1], grid));
        Assert.False(backlog.Offer(3, frames[2], grid)); // full: answered all the same, its features let go
        Assert.False(backlog.Offer(4, frames[3], grid));
        Assert.Equal(2, backlog.Count);
        Assert.Equal(2, backlog.NotKept);
        Assert.Equal([frames[2], frames[3]], released);

        // Taken oldest first; what is taken is the caller's, not released here.
        Assert.True(backlog.TryTake(out var first));
        Assert.Equal(1, first.Id);
        Assert.Same(frames[0], first.Tiles);
        Assert.Equal(2, released.Count);

        // The next warm-up starts its own count; an abandoned one lets every waiting frame go.
        backlog.Open(0);
        Assert.Equal(0, backlog.NotKept);
        Assert.False(backlog.Offer(5, frames[4], grid)); // capacity 0: nothing waits
        backlog.Clear();
        Assert.Equal(0, backlog.Count);
        Assert.Equal([frames[2], frames[3], frames[4], frames[1]], released);
        Assert.Throws<ArgumentOutOfRangeException>(() => backlog.Open(-1));
    }

    [Fact]
    public void Load_shedding_starts_a_frame_only_if_it_can_be_answered_before_its_deadline()
    {
        var shed = new LoadShedding();
        // Nothing trusted yet (the first calls are slow): every frame is started, and a batch takes what the queue holds.
        shed.Measured(elapsedTicks: 5000, frames: 1);
        shed.Measured(elapsedTicks: 200, frames: 2);
        Assert.False(shed.ShouldShed(now: 0, deadline: 1, newerWaiting: true));
        Assert.True(shed.Fits(now: 0, deadline: 1, frames: 8));
        // Three batches: the estimate is their lower median, 100 ticks a frame (5000, 100, 100), not the slow first.
        shed.Measured(elapsedTicks: 100, frames: 1);
        Assert.False(shed.ShouldShed(now: 1000, deadline: 1100, newerWaiting: true)); // done at 1100: in time
        Assert.True(shed.ShouldShed(now: 1000, deadline: 1099, newerWaiting: true));
        // A batch is answered when its last frame is done: two frames take until 1200.
        Assert.True(shed.Fits(now: 1000, deadline: 1200, frames: 2));
        Assert.False(shed.Fits(now: 1000, deadline: 1199, frames: 2));
        // With nothing newer behind it, a frame is started whatever the estimate says: it costs no other
        // frame anything, and its time keeps the estimate honest.
        Assert.False(shed.ShouldShed(now: 1000, deadline: 1001, newerWaiting: false));
        // One slow batch does not move it; a slowdown that lasts does. The batches per frame so far are
        // 5000 100 100; then 400 (lower median of 100 100 400 5000: 100), and 400 again (of 100 100 400 400 5000: 400).
        shed.Measured(elapsedTicks: 400, frames: 1);
        Assert.False(shed.ShouldShed(now: 0, deadline: 100, newerWaiting: true));
        shed.Measured(elapsedTicks: 400, frames: 1);
        Assert.True(shed.ShouldShed(now: 0, deadline: 399, newerWaiting: true));
        Assert.False(shed.ShouldShed(now: 0, deadline: 400, newerWaiting: true));
        shed.Measured(elapsedTicks: 0, frames: 0); // an empty batch teaches nothing
        Assert.False(shed.ShouldShed(now: 0, deadline: 400, newerWaiting: true));
    }
}
