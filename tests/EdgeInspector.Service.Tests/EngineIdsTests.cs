using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Integration.Tests;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// Frame ids across warm restarts: this run's frames never take the ids of an earlier run's frames the
/// engine still holds, and every reference resolves to the run that numbered it. Cases worked by hand.
/// </summary>
public sealed class EngineIdsTests
{
    private const long Run = 1_765_000_000_000;

    private static void Same(long[] frames, (long? Run, int Frames)[] runs, References got)
    {
        Assert.Equal(frames, got.Frames);
        Assert.Equal(runs.Select(r => new ReferenceRun(r.Run, r.Frames)), got.Runs);
    }

    [Fact]
    public void On_a_cold_start_frame_ids_are_the_engines_and_known_good_images_have_no_run()
    {
        var ids = new EngineIds(Run);
        Assert.Equal(0, ids.Base);
        Assert.Equal(5, ids.ToEngine(5));
        Same([-2, -1, 1, 2], [(null, 2), (Run, 2)], ids.Resolve([-2, -1, 1, 2]));
        Assert.Equal($"0:{Run}", ids.Text(new HashSet<long> { -1, 1, 2 }));
    }

    [Fact]
    public void After_a_warm_restart_this_runs_ids_start_above_every_held_one_and_resolve_to_their_run()
    {
        var ids = new EngineIds(Run);
        // The snapshot's run 100 numbered its frames from 0 up; the engine holds its frames 3, 7 and 9.
        ids.Restore("0:100", [3, 7, 9]);
        Assert.Equal(10, ids.Base);
        Assert.Equal(11, ids.ToEngine(1)); // this run's frame 1 is not that run's frame 1
        Assert.Equal(1, ids.ToFrame(11));
        Same([3, 9, 1, 2], [(100, 2), (Run, 2)], ids.Resolve([3, 9, 11, 12]));
        // Saved again: both runs while frames of each are held, only this one once the earlier run's are gone.
        Assert.Equal($"0:100,10:{Run}", ids.Text(new HashSet<long> { 9, 11, 12 }));
        Assert.Equal($"10:{Run}", ids.Text(new HashSet<long> { 11, 12 }));
    }

    [Fact]
    public void Three_runs_in_one_reservoir_each_keep_their_numbering()
    {
        var ids = new EngineIds(Run);
        // Run 200 started at engine id 10 after run 100: it held 100's frame 8 and its own frames 2 and 5.
        ids.Restore("0:100,10:200", [8, 12, 15]);
        Assert.Equal(16, ids.Base);
        Same([8, 2, 5, 1], [(100, 1), (200, 2), (Run, 1)], ids.Resolve([8, 12, 15, 17]));

        // A run whose frames have all left the reservoir is dropped when the snapshot is taken up.
        var later = new EngineIds(Run);
        later.Restore("0:100,10:200", [12]);
        Assert.Equal(13, later.Base);
        Same([2], [(200, 1)], later.Resolve([12]));
        Assert.Equal($"10:200,13:{Run}", later.Text(new HashSet<long> { 12 }));
    }

    [Fact]
    public void A_snapshot_written_without_its_runs_names_no_run_and_the_ids_still_do_not_meet()
    {
        var ids = new EngineIds(Run);
        ids.Restore(null, [4, 5, -1]);
        Assert.Equal(6, ids.Base);
        Same([-1, 4, 1], [(null, 2), (Run, 1)], ids.Resolve([-1, 4, 7]));
        Assert.Equal($"0:-,6:{Run}", ids.Text(new HashSet<long> { 5, 7 }));
        // Only known-good images held: this run starts at 0, as cold.
        var seeded = new EngineIds(Run);
        seeded.Restore(null, [-1, -2]);
        Assert.Equal(0, seeded.Base);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("x", "not ascending start:run pairs")]
    [InlineData("5:1,3:2", "not ascending start:run pairs")]
    [InlineData("0:abc", "a run 'abc' that is not a number")]
    public void A_list_of_runs_that_cannot_be_read_is_refused(string text, string reason)
    {
        var e = Assert.Throws<InvalidDataException>(() => new EngineIds(Run).Restore(text, [1]));
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void The_snapshot_keeps_the_runs_beside_the_key_which_they_do_not_change()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "cam1.engine");
        var layout = new FeatureLayout(2, 2, [new ViewSpec("stage2", 1, 3)], 0);
        var key = SnapshotKey.For("ab12", layout, EngineOptions.Default, "");
        var rows = new float[3];
        EdgeInspector.Core.Numerics.WindowGrid.Quantise([1, 2, 3], rows);
        var state = new LearnedState([new ReservoirFrame(-1, [rows]), new ReservoirFrame(-2, [rows])], [0.5f], 0);

        EngineSnapshots.Save(path, key, [state], "0:100,10:200");
        Assert.NotNull(EngineSnapshots.TryLoad(path, key, out string? refusal, out string? runs));
        Assert.Null(refusal);
        Assert.Equal("0:100,10:200", runs);

        EngineSnapshots.Save(path, key, [state]);
        Assert.NotNull(EngineSnapshots.TryLoad(path, key, out _, out runs));
        Assert.Null(runs);
    }
}
