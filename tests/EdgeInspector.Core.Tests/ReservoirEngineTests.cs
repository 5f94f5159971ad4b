using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Scoring;

namespace EdgeInspector.Core.Tests;

/// <summary>The line's engine: warm-up, scoring on arrival, quarantine, seeding, reset and its learned state.</summary>
public sealed class ReservoirEngineTests
{
    private static EngineOptions Small(int batch = 8, int reservoir = 6) =>
        EngineOptions.Default with { Batch = batch, TopN = 2, ReservoirFrames = reservoir, ReservoirKeep = 1 };

    [Fact]
    public void Warms_up_then_scores_on_arrival_and_hands_every_frame_back_once()
    {
        var line = new SyntheticLine();
        var released = new List<FrameFeatures>();
        var engine = new ReservoirEngine(line.Layout, Small(), released.Add);
        for (int i = 0; i < 7; i++) Assert.Empty(engine.Push(line.Frame(false), i)); // warming up
        Assert.Equal(7, engine.WarmupBuffered);
        var warm = engine.Push(line.Frame(false), 7);
        Assert.Equal(Enumerable.Range(0, 8).Select(i => (long)i), warm.Select(r => r.FrameId));
        Assert.All(warm, r => Assert.True(r.WarmUp));
        Assert.True(engine.IsWarm && engine.IsCalibrated);
        // Each warm-up frame was scored by the other warm-up frames in the reservoir, never by itself.
        Assert.All(warm, r => Assert.DoesNotContain(r.FrameId, r.ReferenceFrames));

        var results = new List<StreamResult>();
        for (int i = 8; i < 40; i++)
        {
            var r = Assert.Single(engine.Push(line.Frame(defect: i % 10 == 3), i));
            Assert.False(r.WarmUp);
            Assert.Equal(i, r.FrameId);
            results.Add(r);
        }
        var defects = results.Where(r => r.FrameId % 10 == 3).ToList();
        var normals = results.Where(r => r.FrameId % 10 != 3).ToList();
        Assert.All(defects, d => Assert.True(d.Calibrated > normals.Max(n => n.Calibrated), $"defect frame {d.FrameId} calibrated {d.Calibrated}"));
        Assert.All(defects, d => Assert.True(d.Calibrated > EngineOptions.Default.QuarantineZ));
        // Every defect frame was quarantined (a normal frame at the calibration's tail may be too).
        Assert.InRange(engine.Quarantined, defects.Count, defects.Count + 4);
        Assert.DoesNotContain(engine.Reservoir.Ids(), id => id % 10 == 3);
        Assert.Equal(40, released.Count);
        Assert.Equal(40, released.Distinct().Count());
    }

    /// <summary>A scheduler that runs every task on a thread of its own and counts them.</summary>
    private sealed class CountingScheduler : TaskScheduler
    {
        public int Queued;
        protected override void QueueTask(Task task)
        {
            Interlocked.Increment(ref Queued);
            new Thread(() => TryExecuteTask(task)) { IsBackground = true }.Start();
        }
        protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;
        protected override IEnumerable<Task> GetScheduledTasks() => [];
    }

    [Fact]
    public void The_warm_up_build_runs_its_loops_where_the_host_says_with_the_same_scores()
    {
        var plain = new ReservoirEngine(new SyntheticLine().Layout, Small());
        var hosted = new ReservoirEngine(new SyntheticLine().Layout, Small());
        var scheduler = new CountingScheduler();
        hosted.Parallelism = new ParallelOptions { TaskScheduler = scheduler };
        var a = new SyntheticLine();
        var b = new SyntheticLine();
        IReadOnlyList<StreamResult> ra = [], rb = [];
        for (int i = 0; i < 8; i++)
        {
            ra = plain.Push(a.Frame(i == 4), i);
            rb = hosted.Push(b.Frame(i == 4), i);
        }
        Assert.True(scheduler.Queued > 0, "the build's loops did not use the host's scheduler");
        Assert.Equal(8, rb.Count);
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(ra[i].Image, rb[i].Image);
            Assert.Equal(ra[i].Patches, rb[i].Patches);
        }
        Assert.Throws<ArgumentNullException>(() => hosted.Parallelism = null!);
    }

    [Fact]
    public void Reservoir_takes_accepted_frames_only_and_scores_a_defect_by_the_frames_it_is_missing_from()
    {
        // Every 8th frame carries the defect block. Quarantined frames never enter the reservoir, so the
        // defect is missing from every reservoir frame and its patches score at their full distance
        // from the normal directions, while normal patches match within noise.
        var line = new SyntheticLine();
        var engine = new ReservoirEngine(line.Layout, Small());
        for (int i = 0; i < 8; i++) engine.Push(line.Frame(defect: i % 8 == 4), i);
        // The warm-up fills it with its batch strided to 6 frames (0, 1, 2, 4, 5, 6), scores them against
        // each other, and the frames that stand out leave: the defect frame 4 does.
        Assert.Equal([0L, 1, 2, 5, 6], engine.Reservoir.Ids());
        for (int i = 8; i < 40; i++) engine.Push(line.Frame(defect: i % 8 == 4), i);
        var ids = engine.Reservoir.Ids();
        // The last six accepted frames, oldest first: 33..39 without the defect frame 36.
        Assert.Equal([33L, 34, 35, 37, 38, 39], ids);

        var defect = Assert.Single(engine.Push(line.Frame(true), 40));
        Assert.Equal(ids, defect.ReferenceFrames); // the result names the frames that scored it
        var normal = Assert.Single(engine.Push(line.Frame(false), 41));
        Assert.Equal(ids, normal.ReferenceFrames); // the defect frame was not let in
        Assert.True(defect.Image > 5 * normal.Image, $"defect {defect.Image} vs normal {normal.Image}");
        // The defect block (patches 0, 1, 6, 7) against the rest of the same frame.
        float block = (defect.Patches[0] + defect.Patches[1] + defect.Patches[6] + defect.Patches[7]) / 4;
        Assert.True(block > 5 * defect.Patches[20], $"block {block} vs patch 20 {defect.Patches[20]}");
    }

    [Fact]
    public void The_image_score_is_the_mean_of_the_top_n_patch_scores()
    {
        var line = new SyntheticLine();
        var engine = new ReservoirEngine(line.Layout, Small() with { TopN = 3 });
        for (int i = 0; i < 8; i++) engine.Push(line.Frame(false), i);
        var r = Assert.Single(engine.Push(line.Frame(true), 8));
        var top = r.Patches.OrderDescending().Take(3).ToArray();
        Assert.Equal((top[0] + top[1] + top[2]) / 3, r.Image, 5);
    }

    [Fact]
    public void Known_good_frames_start_scoring_at_once()
    {
        var line = new SyntheticLine();
        var engine = new ReservoirEngine(line.Layout, Small());
        engine.SeedKnownGood([line.Frame(false), line.Frame(false), line.Frame(false)]);
        Assert.True(engine.IsWarm);
        Assert.Equal([-1L, -2, -3], engine.Reservoir.Ids());
        // Calibrated from the known-good frames (each scored without its own entry): the very first line
        // frame already gets a meaningful calibrated score.
        Assert.True(engine.IsCalibrated);
        var first = Assert.Single(engine.Push(line.Frame(true), 0));
        var second = Assert.Single(engine.Push(line.Frame(false), 1));
        Assert.True(first.Image > 2 * second.Image);
        Assert.True(first.Calibrated > 3, $"defect calibrated {first.Calibrated}");
        Assert.True(second.Calibrated < first.Calibrated);

        var single = new ReservoirEngine(line.Layout, Small());
        single.SeedKnownGood([line.Frame(false)]);
        Assert.True(single.IsWarm);
        Assert.False(single.IsCalibrated); // one score is no scale
        Assert.Single(single.Push(line.Frame(false), 0)); // but it scores
    }

    [Fact]
    public void Reset_drops_what_was_learned_and_starts_cold()
    {
        var line = new SyntheticLine();
        int released = 0;
        var engine = new ReservoirEngine(line.Layout, Small(batch: 4), _ => released++);
        for (int i = 0; i < 4; i++) engine.Push(line.Frame(false), i);
        Assert.True(engine.IsWarm);
        Assert.InRange(engine.Reservoir.Count, 2, 4); // the warm-up batch, less any frame that stood out in it
        engine.Push(line.Frame(false), 4);
        engine.Push(line.Frame(false), 5);
        engine.Reset();
        Assert.False(engine.IsWarm);
        Assert.False(engine.IsCalibrated);
        Assert.Equal(0, engine.Reservoir.Count);
        Assert.Empty(engine.Push(line.Frame(false), 10));
        engine.Reset(); // a buffered warm-up frame goes back to its pool
        Assert.Equal(7, released); // 4 at warm-up, 2 once scored, 1 at the second reset
        Assert.Equal(0, engine.WarmupBuffered);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(2)]
    public void A_restored_state_scores_exactly_as_the_engine_it_was_captured_from(int window)
    {
        var line = new SyntheticLine();
        // 32 of 36 patches (32 is the least a frame keeps): without a window the k-center subset is what
        // is stored; with one, the whole frame and which 32 patches the subset is.
        var options = Small() with { ReservoirKeep = 0.5, ReservoirWindow = window };
        var engine = new ReservoirEngine(line.Layout, options);
        for (int i = 0; i < 30; i++) engine.Push(line.Frame(defect: i % 7 == 3), i);
        var state = engine.Capture();
        Assert.Equal(engine.Reservoir.Ids(), state.Frames.Select(f => f.Id));
        Assert.Equal(engine.Quarantined, state.Quarantined);
        Assert.All(state.Frames, f => Assert.Equal((window < 0 ? 32 : 36) * 16, f.Rows[0].Length));
        Assert.All(state.Frames, f => Assert.Equal(window < 0 ? null : (int?)32, f.Kept?.Length));

        var restored = new ReservoirEngine(line.Layout, options);
        restored.Restore(state);
        Assert.True(restored.IsWarm && restored.IsCalibrated);
        Assert.Equal(engine.Quarantined, restored.Quarantined);
        Assert.Equal(engine.RawScoreAt(3), restored.RawScoreAt(3));
        // The same frames from here on: the same scores, calibration and reservoir, to the bit.
        for (int i = 30; i < 45; i++)
        {
            var f = line.Frame(defect: i % 7 == 3);
            var a = Assert.Single(engine.Push(f, i));
            var b = Assert.Single(restored.Push(f, i));
            Assert.Equal(a.Patches, b.Patches);
            Assert.Equal(a.Calibrated, b.Calibrated);
            Assert.Equal(a.ReferenceFrames, b.ReferenceFrames);
        }
    }

    [Fact]
    public void A_captured_state_stays_what_the_engine_held_while_the_engine_goes_on()
    {
        // The capture unpacks its frames when they are read (the snapshot writer reads them on another
        // thread, later): by then the reservoir has moved on, and the state must not have.
        var line = new SyntheticLine();
        var engine = new ReservoirEngine(line.Layout, Small() with { ReservoirKeep = 0.5 });
        for (int i = 0; i < 12; i++) engine.Push(line.Frame(false), i);
        var state = engine.Capture();
        long[] ids = [.. engine.Reservoir.Ids()];
        var first = state.Frames.Select(f => f.Rows[0].ToArray()).ToArray();
        for (int i = 12; i < 30; i++) engine.Push(line.Frame(false), i);
        Assert.DoesNotContain(ids[0], engine.Reservoir.Ids()); // every captured frame has left the reservoir
        Assert.Equal(ids, state.Frames.Select(f => f.Id));
        for (int t = 0; t < ids.Length; t++) Assert.Equal(first[t], state.Frames[t].Rows[0]);
        var restored = new ReservoirEngine(line.Layout, Small() with { ReservoirKeep = 0.5 });
        restored.Restore(state);
        Assert.Equal(ids, restored.Reservoir.Ids());
    }

    [Fact]
    public void A_state_that_does_not_fit_is_refused_and_the_engine_is_left_as_it_was()
    {
        var line = new SyntheticLine();
        var engine = new ReservoirEngine(line.Layout, Small());
        for (int i = 0; i < 8; i++) engine.Push(line.Frame(false), i);
        var state = engine.Capture();
        var before = engine.Reservoir.Ids();

        var wrongDim = state with { Frames = [.. state.Frames.Select(f => f with { Rows = [f.Rows[0][..^1], f.Rows[1]] })] };
        var e1 = Assert.Throws<ArgumentException>(() => engine.Restore(wrongDim));
        Assert.Contains("whole number of rows of 16", e1.Message);
        var tooMany = state with { Frames = [.. state.Frames, .. state.Frames] };
        Assert.Contains("this engine keeps 6", Assert.Throws<ArgumentException>(() => engine.Restore(tooMany)).Message);
        var oneFrame = state with { Frames = [state.Frames[0]] };
        Assert.Contains("two reservoir frames", Assert.Throws<ArgumentException>(() => engine.Restore(oneFrame)).Message);
        Assert.Equal(before, engine.Reservoir.Ids());
        Assert.True(engine.IsWarm);
    }

    [Fact]
    public void The_calibration_hands_back_its_scores_oldest_first_across_the_ring_wrap()
    {
        var c = new ScoreCalibrator(4);
        Assert.Empty(c.Values());
        c.Accept(1);
        c.Accept(2);
        Assert.Equal([1f, 2f], c.Values());
        for (int i = 3; i <= 6; i++) c.Accept(i);
        Assert.Equal([3f, 4f, 5f, 6f], c.Values());
        var copy = new ScoreCalibrator(4);
        foreach (float v in c.Values()) copy.Accept(v);
        Assert.Equal(c.Calibrate(10), copy.Calibrate(10));
    }

    [Fact]
    public void Packed_panels_give_their_rows_back()
    {
        // 37 rows of 3 in segments of 33 and 4: two padded panels for the first, one for the second.
        var rows = Enumerable.Range(0, 37 * 3).Select(i => (float)i).ToArray();
        var packed = new PackedPanels();
        packed.Repack(rows, 3, [33, 4]);
        var back = new float[37 * 3];
        packed.CopyRows(back);
        Assert.Equal(rows, back);
        Assert.Throws<ArgumentException>(() => packed.CopyRows(new float[5]));
    }
}
