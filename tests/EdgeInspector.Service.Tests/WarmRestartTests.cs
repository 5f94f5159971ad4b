using System.Text.Json;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tests;
using EdgeInspector.Integration.Tests;
using static EdgeInspector.Service.Tests.ReplayFolders;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// The engine's learned state on disk: the snapshot file on its own (what is refused and why), and the
/// service killed once warm and started again, scoring from its first frame.
/// </summary>
public sealed class WarmRestartTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    private static readonly FeatureLayout Layout = new(2, 2, [new ViewSpec("stage2", 1, 3), new ViewSpec("stage3", 3, 2)], 0);

    private static SnapshotKey Key(string recipe = "") => SnapshotKey.For("ab12", Layout, EngineOptions.Default, recipe);

    // Kept rows as a reservoir exports them: each value a level of the rows' step (KeptRows).
    private static LearnedState State() => new(
        [
            new ReservoirFrame(5, [Levelled([1, 2, 3, 4, 5, 6]), Levelled([7, 8, 9, 10])]),
            new ReservoirFrame(-1, [Levelled([0.5f, 0, 0, 0, 0, -0.5f]), Levelled([1, 1, 1, 1])]),
        ],
        [0.25f, 0.5f, float.Epsilon], 3);

    private static float[] Levelled(float[] values)
    {
        var into = new float[values.Length];
        EdgeInspector.Core.Numerics.WindowGrid.Quantise(values, into);
        return into;
    }

    [Fact]
    public void A_snapshot_reads_back_as_written()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "line", "cam1.engine");
        Assert.Null(EngineSnapshots.TryLoad(path, Key(), out string? none));
        Assert.Null(none); // no file: nothing to say

        EngineSnapshots.Save(path, Key(), State());
        var loaded = EngineSnapshots.TryLoad(path, Key(), out string? refusal);
        Assert.Null(refusal);
        var back = Assert.Single(loaded!);
        Assert.Equal([5L, -1], back.Frames.Select(f => f.Id));
        Assert.Equal(State().Frames[0].Rows[1], back.Frames[0].Rows[1]);
        Assert.Equal(State().Frames[1].Rows[0], back.Frames[1].Rows[0]);
        Assert.Equal(State().Calibration, back.Calibration);
        Assert.Equal(3, back.Quarantined);
        Assert.False(File.Exists(path + ".tmp")); // written under a temporary name, then renamed

        // A tiled engine writes one state per tile position, read back in order.
        var other = State() with { Quarantined = 7 };
        EngineSnapshots.Save(path, Key(), [State(), other]);
        var tiles = EngineSnapshots.TryLoad(path, Key(), out _)!;
        Assert.Equal([3L, 7], tiles.Select(t => t.Quarantined));
        Assert.Equal(State().Frames[1].Rows[0], tiles[1].Frames[1].Rows[0]);
    }

    [Fact]
    public void A_whole_frame_is_saved_in_bytes_and_reads_back_as_the_reservoir_gave_it()
    {
        // What a reservoir with a window exports: every patch at its grid's levels, and which patches (1 and 3)
        // are kept. The file holds a byte per value, and gives back the same values.
        var rng = new Random(3);
        var dims = new[] { 3, 2 };
        int[] kept = [1, 3];
        var exported = new float[dims.Length][];
        for (int v = 0; v < dims.Length; v++)
        {
            var own = Enumerable.Range(0, 4 * dims[v]).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
            exported[v] = new float[own.Length];
            EdgeInspector.Core.Numerics.WindowGrid.Pack(own, 2, 2, dims[v], 2).CopyRows(exported[v]);
            Assert.NotEqual(own, exported[v]); // the patches are at their levels
        }
        var state = new LearnedState([new ReservoirFrame(9, exported, kept)], [0.5f], 0);
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "cam1.engine");
        EngineSnapshots.Save(path, Key(), state);
        var back = Assert.Single(Assert.Single(EngineSnapshots.TryLoad(path, Key(), out string? refusal)!).Frames);
        Assert.Null(refusal);
        Assert.Equal(kept, back.Kept);
        for (int v = 0; v < dims.Length; v++) Assert.Equal(exported[v], back.Rows[v]);
        // Per view: the value count, the step and 4 · dim levels; the floats would be 4 · 4 · dim.
        long body = new FileInfo(path).Length - 32;
        long frame = 8 + 4 + 4 + 4 + dims.Sum(d => 4 + 4 + 4 * d) + 2 * 4;
        long header = 8 + 4 + System.Text.Encoding.UTF8.GetByteCount(Key().Text()) + 4;
        Assert.Equal(header + frame + 4 + 4 + 8, body);

        // A whole frame needs the running layout's key to be split into its views.
        var e = Assert.Throws<ArgumentException>(() => EngineSnapshots.Save(path, SnapshotKey.Parse(Key().Text()), state));
        Assert.Contains("running layout", e.Message);
    }

    [Theory]
    [InlineData(2)] // a window: whole frames at their grids' levels, and which patches are kept
    [InlineData(-1)] // none: the kept patches at their own levels
    public void A_running_engines_capture_is_written_as_its_frames_unpacked_would_be(int radius)
    {
        // The writer reads a capture's views as the reservoir holds them (IHeldFrames), never a frame in floats.
        // The file is byte for byte the one written from the same frames unpacked.
        var rng = new Random(17);
        var reservoir = new FrameReservoir(Layout, new SparseProjection(Layout, 4, 7), 3, 2, 0.3, radius: radius);
        for (int i = 0; i < 4; i++) reservoir.Add(RandomFrames.Next(Layout, rng), 10 + i);
        var captured = reservoir.Export();
        Assert.IsAssignableFrom<IHeldFrames>(captured);
        var unpacked = captured.ToList();
        Assert.Equal(radius >= 0, unpacked[0].Kept is not null);

        using var tmp = new TempFolder();
        string held = Path.Combine(tmp.Path, "held.engine"), floats = Path.Combine(tmp.Path, "floats.engine");
        EngineSnapshots.Save(held, Key(), [new LearnedState(captured, [0.5f], 1), new LearnedState(captured, [0.25f], 2)]);
        EngineSnapshots.Save(floats, Key(), [new LearnedState(unpacked, [0.5f], 1), new LearnedState(unpacked, [0.25f], 2)]);
        Assert.Equal(File.ReadAllBytes(floats), File.ReadAllBytes(held));
        var back = EngineSnapshots.TryLoad(held, Key(), out string? refusal)!;
        Assert.Null(refusal);
        Assert.Equal([11L, 12, 13], back[1].Frames.Select(f => f.Id));
        for (int t = 0; t < 3; t++)
        {
            for (int v = 0; v < Layout.Views.Count; v++) Assert.Equal(unpacked[t].Rows[v], back[0].Frames[t].Rows[v]);
        }
    }

    [Fact]
    public void A_snapshot_made_under_other_settings_is_refused_saying_which()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "cam1.engine");
        EngineSnapshots.Save(path, Key(), State());
        string? Refusal(SnapshotKey key)
        {
            Assert.Null(EngineSnapshots.TryLoad(path, key, out string? why));
            return why;
        }
        Assert.Contains("another model (hash ab12, running cd34)", Refusal(Key() with { Model = "cd34" }));
        var otherTaps = new FeatureLayout(2, 2, [new ViewSpec("stage2", 1, 3), new ViewSpec("stage4", 3, 2)], 0);
        Assert.Contains("another tap layout (2x2;stage2/a1:3,stage3/a3:2, running 2x2;stage2/a1:3,stage4/a3:2)",
            Refusal(SnapshotKey.For("ab12", otherTaps, EngineOptions.Default, "")));
        Assert.Contains("other engine settings", Refusal(SnapshotKey.For("ab12", Layout, EngineOptions.Default with { ReservoirKeep = 0.25 }, "")));
        Assert.Contains("recipe 'a', the camera runs 'b'", EngineSnapshots.TryLoad(Save(Key("a")), Key("b"), out string? r) is null ? r : null);
        // What was learned of the whole frame says nothing of a region of it, nor of another region.
        string region = new EdgeInspector.Core.Tiling.PixelRect(10, 20, 300, 400).ToString();
        Assert.Contains("made for the region whole frame, the camera now inspects [10, 20, 300, 400]", Refusal(SnapshotKey.For("ab12", Layout, EngineOptions.Default, "", region)));
        Assert.Contains("the camera now inspects whole frame in 2x2 tiles, overlap 0, position", Refusal(SnapshotKey.For("ab12", Layout, EngineOptions.Default, "", "whole frame in 2x2 tiles, overlap 0, position")));
        Assert.NotNull(EngineSnapshots.TryLoad(Save(SnapshotKey.For("ab12", Layout, EngineOptions.Default, "", region)), SnapshotKey.For("ab12", Layout, EngineOptions.Default, "", region), out _));
        // A header written before regions were recorded is the whole frame's.
        Assert.Equal(SnapshotKey.WholeFrame, SnapshotKey.Parse("model=a\nlayout=b\nengine=c\nrecipe=\n").Region);
        // The warm-up batch and κ_q only decide what enters later: a snapshot survives a change of them.
        Assert.NotNull(EngineSnapshots.TryLoad(path, SnapshotKey.For("ab12", Layout, EngineOptions.Default with { Batch = 16, QuarantineZ = 3 }, ""), out _));

        string Save(SnapshotKey key)
        {
            string p = Path.Combine(tmp.Path, "other.engine");
            EngineSnapshots.Save(p, key, State());
            return p;
        }
    }

    [Theory]
    [InlineData("flip", "checksum does not match")]
    [InlineData("truncate", "checksum does not match")]
    [InlineData("tiny", "too short to be a snapshot")]
    [InlineData("foreign", "not an EdgeInspector snapshot")]
    [InlineData("floats", "another format version")]
    public void A_damaged_snapshot_is_refused_saying_why(string damage, string reason)
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "cam1.engine");
        EngineSnapshots.Save(path, Key(), State());
        byte[] bytes = File.ReadAllBytes(path);
        switch (damage)
        {
            case "flip": bytes[bytes.Length / 2] ^= 0x40; break;
            case "truncate": bytes = bytes[..^7]; break;
            case "tiny": bytes = bytes[..10]; break;
            case "foreign":
                // A file with a valid checksum but another magic: what a future format would look like.
                bytes[0] = (byte)'X';
                System.Security.Cryptography.SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32)).CopyTo(bytes.AsSpan(bytes.Length - 32));
                break;
            case "floats":
                // A layout of earlier builds (EISNAP05: kept patches as floats; EISNAP03: whole frames as floats):
                // refused, and the engine warms up.
                "EISNAP05"u8.CopyTo(bytes);
                System.Security.Cryptography.SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32)).CopyTo(bytes.AsSpan(bytes.Length - 32));
                break;
        }
        File.WriteAllBytes(path, bytes);
        Assert.Null(EngineSnapshots.TryLoad(path, Key(), out string? refusal));
        Assert.Contains(reason, refusal);
    }

    [Fact]
    public async Task Killed_once_warm_the_service_scores_its_first_frame_after_a_restart()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 14, defects: 0);
        string yaml = Yaml.Config(Yaml.Replay(folder, fps: 4, loop: true), Yaml.Broker(broker.Port), tmp.Path)
            .Replace("  batch: 8", "  batch: 8\n  snapshot_interval_s: 1");
        string snapshot = Path.Combine(tmp.Path, "spool", "testline", "cam1.engine");
        const string Topic = "edgeinspector/testline/cam1/#";
        long firstRun, firstRunLastFrame;

        // 1. Cold: the first batch (8) is answered warming_up; once warm, the state is saved at once.
        await using (var probe = new Probe(broker.Port, Topic))
        {
            await probe.ConnectAsync();
            using var first = new ServiceRun(tmp.Path, yaml);
            await probe.WaitFor(p => p.On("/verdict").Any(v => v.Json.GetProperty("verdict").GetString() == "pass"), Long, "a scored verdict", first.Process);
            Assert.Equal("warming_up", probe.On("/verdict")[0].Json.GetProperty("verdict").GetString());
            await probe.WaitFor(p => p.On("/status").Any(s => s.Json.GetProperty("engine").GetProperty("snapshot_saved_s_ago").ValueKind == JsonValueKind.Number),
                TimeSpan.FromSeconds(30), "the status naming a saved snapshot", first.Process);
            Assert.True(File.Exists(snapshot), "no snapshot beside the spool");
            // While it learns (every good part enters the reservoir), the snapshot is written again each interval.
            var saved = File.GetLastWriteTimeUtc(snapshot);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (File.GetLastWriteTimeUtc(snapshot) == saved && sw.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(100);
            Assert.True(File.GetLastWriteTimeUtc(snapshot) > saved, "the snapshot was not written again within 15 s at snapshot_interval_s: 1");
            first.Process.Kill(); // SIGKILL: no stop handler runs
            firstRun = probe.On("/verdict")[0].Json.GetProperty("run_id").GetInt64();
            firstRunLastFrame = probe.On("/verdict").Max(v => v.Json.GetProperty("frame_id").GetInt64());
        }

        // 2. Started again: the snapshot is taken up, and the very first verdict is scored.
        await using (var probe = new Probe(broker.Port, Topic))
        {
            await probe.ConnectAsync();
            using var second = new ServiceRun(tmp.Path, yaml);
            await probe.WaitFor(p => p.On("/verdict").Count >= 3, Long, "three verdicts after the restart", second.Process);
            var kinds = probe.On("/verdict").Select(v => v.Json.GetProperty("verdict").GetString()).ToList();
            Assert.All(kinds, k => Assert.Contains(k, new[] { "pass", "unsure", "fail" }));
            Assert.Contains("warm restart from snapshot", second.Process.Output);
            // Frame ids go on after the first run's: a PLC that de-duplicates by the id alone (the reject
            // topic's "<frame id>,<0|1>") never takes this run's frames for the first run's.
            Assert.True(probe.On("/verdict")[0].Json.GetProperty("frame_id").GetInt64() > firstRunLastFrame,
                $"frame {probe.On("/verdict")[0].Json.GetProperty("frame_id").GetInt64()} after the first run's {firstRunLastFrame}");
            // Its references are every frame the snapshot held, named as the first run numbered them and
            // said to be that run's: none is taken for the scored frame's own entry and left out.
            var restored = System.Text.RegularExpressions.Regex.Match(second.Process.Output, @"warm restart from snapshot \S+ \(reservoir (\d+) frames");
            Assert.True(restored.Success, "no warm restart line naming the reservoir");
            int held = int.Parse(restored.Groups[1].Value);
            foreach (var v in probe.On("/verdict").Take(3).Select(m => m.Json))
            {
                var frames = v.GetProperty("reference_frames").EnumerateArray().Select(e => e.GetInt64()).ToList();
                var runs = v.GetProperty("reference_runs").EnumerateArray().ToList();
                Assert.Equal(firstRun, runs[0].GetProperty("run_id").GetInt64());
                Assert.Equal(held, runs[0].GetProperty("frames").GetInt32());
                Assert.All(frames.Take(held), f => Assert.InRange(f, 1, 1000));
                // Then this run's own frames, if any entered before this one.
                Assert.Equal(frames.Count, runs.Sum(r => r.GetProperty("frames").GetInt32()));
                Assert.All(runs.Skip(1), r => Assert.Equal(v.GetProperty("run_id").GetInt64(), r.GetProperty("run_id").GetInt64()));
                Assert.NotEqual(firstRun, v.GetProperty("run_id").GetInt64());
            }

            // 3. reset deletes the snapshot along with what was learned.
            await probe.PublishAsync("edgeinspector/testline/cam1/command", """{"id":"r1","command":"reset"}""");
            await probe.WaitFor(p => p.On("/command/ack").Any(), TimeSpan.FromSeconds(30), "the reset acknowledged", second.Process);
            Assert.True(probe.On("/command/ack")[0].Json.GetProperty("ok").GetBoolean());
            Assert.False(File.Exists(snapshot), "reset left the snapshot on disk");
        }

        // 4. A damaged snapshot: refused with one line saying why, and the engine warms up as it would cold.
        EngineSnapshots.Save(snapshot, new SnapshotKey("x", "y", "z", ""), new LearnedState([], [], 0));
        byte[] bytes = File.ReadAllBytes(snapshot);
        bytes[12] ^= 1;
        File.WriteAllBytes(snapshot, bytes);
        await using (var probe = new Probe(broker.Port, Topic))
        {
            await probe.ConnectAsync();
            using var third = new ServiceRun(tmp.Path, yaml);
            await probe.WaitFor(p => p.On("/verdict").Count >= 2, Long, "verdicts after a damaged snapshot", third.Process);
            Assert.Equal("warming_up", probe.On("/verdict")[0].Json.GetProperty("verdict").GetString());
            var refused = third.Process.Output.Split('\n').Where(l => l.Contains("snapshot") && l.Contains("refused")).ToList();
            var line = Assert.Single(refused);
            Assert.Contains("checksum does not match", line);
        }
    }
}
