using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EdgeInspector.Integration.Tests;
using static EdgeInspector.Service.Tests.ReplayFolders;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// The service end to end, as a line runs it: its own process, a real broker, real images, the real
/// model. Every test fails (never skips) when mosquitto, the fake camera or ../shared is missing.
/// </summary>
public class ServiceTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Every_frame_gets_one_verdict_in_order_and_a_corrupt_image_gets_an_error_verdict()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 18, defects: 3, corruptAt: 9);
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        using var service = new ServiceRun(tmp.Path, Yaml.Config(Yaml.Replay(folder, fps: 3, loop: false), Yaml.Broker(broker.Port), tmp.Path));
        const int frames = 22;
        await probe.WaitFor(p => p.On("/verdict").Count >= frames, Long, $"{frames} verdicts", service.Process);
        await Task.Delay(1000); // nothing more may arrive: one verdict per frame

        var verdicts = probe.On("/verdict");
        Assert.Equal(Enumerable.Range(1, frames).Select(i => (long)i), Ids(verdicts));
        var kinds = verdicts.Select(v => v.Json.GetProperty("verdict").GetString()).ToList();
        var parts = verdicts.Select(v => v.Json.GetProperty("part_id").GetString()).ToList();
        // The corrupt file is frame 10: answered "error" (and rejected), named, and the line goes on.
        int corrupt = parts.IndexOf("009_corrupt");
        Assert.Equal(9, corrupt);
        Assert.Equal("error", kinds[corrupt]);
        Assert.True(verdicts[corrupt].Json.GetProperty("reject").GetBoolean());
        Assert.Contains("009_corrupt.png", verdicts[corrupt].Json.GetProperty("error").GetString());
        // The PLC's codes: 4 decode failure, 1 not warm, 0 scored.
        Assert.Equal(4, verdicts[corrupt].Json.GetProperty("error_code").GetInt32());
        Assert.All(verdicts, v => Assert.Equal(v.Json.GetProperty("verdict").GetString() switch { "warming_up" => 1, "error" => 4, _ => 0 }, v.Json.GetProperty("error_code").GetInt32()));
        // Frames are answered warming_up until the engine is warm (the first batch-1 at least, then those
        // that arrive while the batch is scored), and scored from then on; the line goes on after the corrupt one.
        // How many arrive during the build depends on the machine's load (3 fps): the bound only asks
        // that the last frames are scored.
        Assert.All(kinds.Take(7), k => Assert.Equal("warming_up", k));
        int firstScored = kinds.FindIndex(k => k is "pass" or "fail" or "unsure");
        Assert.InRange(firstScored, 7, frames - 3);
        Assert.All(kinds.Skip(firstScored), k => Assert.Contains(k, new[] { "pass", "fail", "unsure", "error" }));
        Assert.Equal(1, kinds.Count(k => k == "error"));
        Assert.Contains(kinds.Skip(10), k => k is "pass" or "fail" or "unsure");
        foreach (var v in verdicts.Skip(firstScored).Where(v => v.Json.GetProperty("verdict").GetString() != "error"))
        {
            var j = v.Json;
            Assert.True(j.GetProperty("calibrated").ValueKind == JsonValueKind.Number);
            Assert.Equal(3.0, j.GetProperty("threshold").GetDouble());
            Assert.True(j.GetProperty("latency_ms").GetDouble() > 0);
            Assert.Equal(64, j.GetProperty("model_hash").GetString()!.Length);
            // The audit trail of a score: the reservoir frames that scored it. Earlier frames only, never
            // the part itself, never the corrupt frame, and never a part that failed (quarantined frames
            // do not become references).
            long id = j.GetProperty("frame_id").GetInt64();
            var refs = j.GetProperty("reference_frames").EnumerateArray().Select(e => e.GetInt64()).ToList();
            Assert.NotEmpty(refs);
            Assert.All(refs, r => Assert.InRange(r, 1, id - 1));
            Assert.DoesNotContain(corrupt + 1L, refs);
            Assert.All(refs, r => Assert.NotEqual("fail", kinds[(int)r - 1]));
            // All of them frames of this run: one stretch, this run's id.
            var run = Assert.Single(j.GetProperty("reference_runs").EnumerateArray());
            Assert.Equal((j.GetProperty("run_id").GetInt64(), refs.Count), (run.GetProperty("run_id").GetInt64(), run.GetProperty("frames").GetInt32()));
        }
        var failed = verdicts.Where(v => v.Json.GetProperty("verdict").GetString() == "fail").ToList();
        Assert.NotEmpty(failed); // three broken bottles end the line
        var flagged = verdicts.Where(v => v.Json.GetProperty("verdict").GetString() is "fail" or "unsure").ToList();
        // The simple PLC topic: one "<frame id>,<0|1>" per frame, agreeing with the verdicts.
        var rejects = probe.On("/reject").Select(r => r.Text).ToList();
        Assert.Equal(verdicts.Select(v => $"{v.Json.GetProperty("frame_id").GetInt64()},{(v.Json.GetProperty("reject").GetBoolean() ? 1 : 0)}"), rejects);
        // Heatmaps (publish: all) for scored frames: JPEG bytes with the frame id as a user property.
        var heatmaps = probe.On("/heatmap");
        Assert.NotEmpty(heatmaps);
        Assert.All(heatmaps, h => Assert.True(h.Payload[0] == 0xFF && h.Payload[1] == 0xD8, "not a JPEG"));
        Assert.All(heatmaps, h => Assert.Contains(long.Parse(h.Properties["frame_id"]), Ids(verdicts)));
        var status = probe.On("/status").Last().Json;
        Assert.Equal("online", status.GetProperty("state").GetString());
        Assert.Equal(1, status.GetProperty("verdicts").GetProperty("error").GetInt64());
        Assert.True(status.GetProperty("engine").GetProperty("warm").GetBoolean());
        // Every reference a verdict named is held (the default reservoir of 64 is never full here).
        int held = status.GetProperty("engine").GetProperty("reservoir_frames").GetInt32();
        var named = verdicts.Skip(firstScored).Where(v => v.Json.GetProperty("reference_frames").ValueKind == JsonValueKind.Array)
            .SelectMany(v => v.Json.GetProperty("reference_frames").EnumerateArray().Select(e => e.GetInt64())).Distinct().Count();
        Assert.InRange(named, 1, held);
        // ready, the PLC's interlock: never while the engine warms up; true once warm with the camera
        // streaming; false again when the replay (loop: false) has run out.
        var statuses = probe.On("/status").Select(m => m.Json).Where(j => j.TryGetProperty("ready", out _)).ToList();
        Assert.All(statuses.Where(j => !j.GetProperty("engine").GetProperty("warm").GetBoolean()), j => Assert.False(j.GetProperty("ready").GetBoolean()));
        Assert.Contains(statuses, j => j.GetProperty("ready").GetBoolean() && j.GetProperty("camera_state").GetString() == "streaming");
        await probe.WaitFor(p => p.On("/status").Last().Json.GetProperty("camera_state").GetString() == "finished", TimeSpan.FromSeconds(10), "camera_state finished", service.Process);
        Assert.False(probe.On("/status").Last().Json.GetProperty("ready").GetBoolean());

        // A clean stop says offline on the retained status topic.
        service.Process.Terminate();
        await service.Process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(40)).Token);
        Assert.Equal(0, service.Process.ExitCode);
        await probe.WaitFor(p => p.On("/status").Last().Json.GetProperty("state").GetString() == "offline", TimeSpan.FromSeconds(10), "status offline");
        Assert.True(Directory.EnumerateFiles(Path.Combine(tmp.Path, "logs"), "edgeinspector-*.log").Any(), "no rolling log file written");

        // archive.save: fails. Each flagged part (fail or unsure) is archived with what it was decided with, as published.
        var records = Directory.EnumerateFiles(Path.Combine(tmp.Path, "archive", "cam1"), "*.json", SearchOption.AllDirectories)
            .Select(f => JsonDocument.Parse(File.ReadAllText(f)).RootElement).ToList();
        Assert.Equal(flagged.Select(v => v.Json.GetProperty("frame_id").GetInt64()).Order(), records.Select(r => r.GetProperty("frame_id").GetInt64()).Order());
        foreach (var r in records)
        {
            var published = flagged.Single(v => v.Json.GetProperty("frame_id").GetInt64() == r.GetProperty("frame_id").GetInt64()).Json;
            foreach (string field in new[] { "verdict", "threshold", "model_hash", "recipe", "reference_runs" })
            {
                Assert.Equal(published.GetProperty(field).ToString(), r.GetProperty(field).ToString());
            }
            Assert.Equal(published.GetProperty("reference_frames").EnumerateArray().Select(e => e.GetInt64()), r.GetProperty("reference_frames").EnumerateArray().Select(e => e.GetInt64()));
        }
    }

    [Fact]
    public async Task Two_cameras_a_replay_and_a_GigE_camera_share_one_backbone_and_both_are_answered()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        using var camera = new FakeCamera();
        await camera.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 20, defects: 0);
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/#");
        await probe.ConnectAsync();
        // 3 fps each: 6 fps together, about 70% of what this 2-core machine scores.
        string cams = Yaml.Replay(folder, fps: 3, loop: true) + "\n" + Yaml.Gige("free_run").Replace("frame_rate: 4", "frame_rate: 3");
        using var service = new ServiceRun(tmp.Path, Yaml.Config(cams, Yaml.Broker(broker.Port), tmp.Path));
        bool Scored(Received v) => v.Json.GetProperty("verdict").GetString() is "pass" or "fail" or "unsure";
        await probe.WaitFor(p => p.On("cam1/verdict").Count(Scored) >= 15 && p.On("gige1/verdict").Count(Scored) >= 15, Long, "15 scored verdicts from each camera", service.Process);
        // One backbone for both: the model is loaded once.
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(service.Process.Output, "loaded and probed"));
        var rates = new List<string>();
        foreach (string cam in (string[])["cam1", "gige1"])
        {
            var verdicts = probe.On(cam + "/verdict");
            var ids = Ids(verdicts);
            Assert.Equal(ids.Order(), ids);
            Assert.Equal(ids.Count, ids.Distinct().Count());
            var scored = verdicts.Where(Scored).ToList();
            double span = (scored[^1].At - scored[0].At).TotalSeconds;
            double rate = (scored.Count - 1) / span;
            Assert.InRange(rate, 2, 4.5); // each camera answered at its own rate (3 fps), neither starved
            rates.Add($"{cam}: {rate:0.00} scored verdicts/s over {span:0.0} s, latency p50 {probe.On(cam + "/status").Last().Json.GetProperty("latency_ms").GetProperty("p50").GetDouble():0} ms");
        }
        output.WriteLine(string.Join("\n", rates));
    }

    [Fact]
    public async Task Fake_camera_killed_and_restarted_the_service_recovers_by_itself()
    {
        await using var line = await GigeLine.StartAsync("free_run");
        var (camera, probe, service) = (line.Camera, line.Probe, line.Service);
        await probe.WaitFor(p => p.On("/verdict").Count >= 3, Long, "verdicts from the fake camera", service.Process);
        // The line announces part ids: each goes to the next frame captured, in order.
        foreach (string part in new[] { "P-1", "P-2", "P-3" }) await probe.PublishAsync("edgeinspector/testline/gige1/part", part);
        await probe.WaitFor(p => p.On("/verdict").Any(v => v.Json.GetProperty("part_id").GetString() == "P-3"), Long, "the announced part ids on verdicts", service.Process);
        var tagged = probe.On("/verdict").Where(v => v.Json.GetProperty("part_id").ValueKind == JsonValueKind.String).ToList();
        Assert.Equal(["P-1", "P-2", "P-3"], tagged.Select(v => v.Json.GetProperty("part_id").GetString()));
        // On frames in capture order. (Not necessarily three consecutive frames: a frame captured
        // between two announcements arriving takes none, as it should.)
        var taggedIds = Ids(tagged);
        Assert.Equal(taggedIds.Order(), taggedIds);
        Assert.Equal(3, taggedIds.Distinct().Count());

        camera.Kill();
        await Task.Delay(TimeSpan.FromSeconds(4));
        long before = Ids(probe.On("/verdict")).Max();
        await camera.StartAsync();
        await probe.WaitFor(p => Ids(p.On("/verdict")).Max() >= before + 4, Long, "verdicts after the camera came back", service.Process);
        await probe.WaitFor(p => p.On("/status").Last().Json.GetProperty("camera_counters").GetProperty("reconnects").GetInt64() >= 1, TimeSpan.FromSeconds(10), "a reconnect counted on the status topic", service.Process);
        var ids = Ids(probe.On("/verdict"));
        Assert.Equal(ids.Order(), ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Contains("camera lost", service.Process.Output);
    }

    [Fact]
    public async Task Invalid_edit_keeps_the_last_good_config_running_and_a_valid_edit_applies_at_once()
    {
        using var tmp = new TempFolder();
        int port = Ports.Free();
        string folder = ReplayFolder(tmp.Path, good: 12, defects: 0);
        // No broker configured: the service's embedded broker serves. Also the systemd contract:
        // READY=1 once started, WATCHDOG=1 while the pipeline moves.
        string notify = Path.Combine(tmp.Path, "notify.sock");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(notify));
        var notes = new System.Collections.Concurrent.ConcurrentQueue<string>();
        _ = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            while (true)
            {
                int n;
                try { n = await socket.ReceiveAsync(buffer); } catch { return; }
                notes.Enqueue(Encoding.UTF8.GetString(buffer, 0, n));
            }
        });
        string yaml = Yaml.Config(Yaml.Replay(folder, fps: 4, loop: true), Yaml.Embedded(port), tmp.Path, "recipes:\n  strict:\n    threshold: 9.5\n");
        using var service = new ServiceRun(tmp.Path, yaml, new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify, ["WATCHDOG_USEC"] = "3000000" });
        await using var probe = new Probe(port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        await probe.WaitFor(p => p.On("/verdict").Any(v => v.Json.GetProperty("verdict").GetString() is "pass" or "fail" or "unsure"), Long, "scored verdicts", service.Process);
        Assert.Contains(notes, n => n.Contains("READY=1"));
        Assert.Contains(notes, n => n.Contains("WATCHDOG=1"));

        // A technician's typo: the file is refused, the status says where, scoring goes on at threshold 3.
        File.WriteAllText(service.ConfigPath, yaml.Replace("threshold: 3.0", "threshold: three"));
        await probe.WaitFor(p => p.On("/status").LastOrDefault()?.Json.GetProperty("config").GetProperty("error").GetString() is { } e && e.Contains("verdict.threshold"),
            TimeSpan.FromSeconds(30), "the config error on the status topic", service.Process);
        string error = probe.On("/status").Last().Json.GetProperty("config").GetProperty("error").GetString()!;
        Assert.Contains("edgeinspector.yaml:", error);
        Assert.Contains("'three' is not a number", error);
        int seen = probe.On("/verdict").Count;
        await probe.WaitFor(p => p.On("/verdict").Count >= seen + 4, TimeSpan.FromSeconds(30), "verdicts while the bad edit sits in the file", service.Process);
        Assert.All(probe.On("/verdict").Skip(seen), v => Assert.Equal(3.0, v.Json.GetProperty("threshold").GetDouble()));
        Assert.False(service.Process.HasExited);

        // A save cut short at a section boundary still parses; without its mqtt section the service would
        // move to its embedded broker's defaults. Refused: the status names the sections it drops.
        File.WriteAllText(service.ConfigPath, yaml[..yaml.IndexOf("mqtt:", StringComparison.Ordinal)]);
        await probe.WaitFor(p => p.On("/status").LastOrDefault()?.Json.GetProperty("config").GetProperty("error").GetString() is { } e && e.Contains("drops the section(s)"),
            TimeSpan.FromSeconds(30), "the truncated save refused on the status topic", service.Process);
        Assert.Contains("mqtt, logging, archive, http, recipes", probe.On("/status").Last().Json.GetProperty("config").GetProperty("error").GetString());
        // A pathological file (100,000 nested '[') is refused by name instead of overflowing the stack.
        File.WriteAllText(service.ConfigPath, "line: [" + new string('[', 100_000));
        await probe.WaitFor(p => p.On("/status").LastOrDefault()?.Json.GetProperty("config").GetProperty("error").GetString() is { } e && e.Contains("nested more than"),
            TimeSpan.FromSeconds(30), "the deep file refused on the status topic", service.Process);
        // An edit the YAML allows but this model does not: an engine that could outgrow engine.memory_mb is
        // refused before anything stops, saying what it would need.
        File.WriteAllText(service.ConfigPath, yaml.Replace("  batch: 8", "  batch: 8\n  memory_mb: 16"));
        await probe.WaitFor(p => p.On("/status").LastOrDefault()?.Json.GetProperty("config").GetProperty("error").GetString() is { } e && e.Contains("engine.memory_mb"),
            TimeSpan.FromSeconds(30), "the engine's memory refused on the status topic", service.Process);
        Assert.Matches(@"engine\.memory_mb: each camera's engine would hold up to \d+ MB with this model and one tile", probe.On("/status").Last().Json.GetProperty("config").GetProperty("error").GetString());
        seen = probe.On("/verdict").Count;
        await probe.WaitFor(p => p.On("/verdict").Count >= seen + 2, TimeSpan.FromSeconds(30), "verdicts while the bad files sat there", service.Process);
        Assert.False(service.Process.HasExited);

        // The fix: applied without a restart (the engine keeps what it learned: no warming_up again).
        File.WriteAllText(service.ConfigPath, yaml.Replace("threshold: 3.0", "threshold: 4.5"));
        await probe.WaitFor(p => p.On("/verdict").LastOrDefault()?.Json.GetProperty("threshold").GetDouble() == 4.5, TimeSpan.FromSeconds(30), "verdicts at the new threshold", service.Process);
        var status = probe.On("/status").Last().Json;
        Assert.Equal(JsonValueKind.Null, status.GetProperty("config").GetProperty("error").ValueKind);
        Assert.Equal(2, status.GetProperty("config").GetProperty("version").GetInt32());
        var after = probe.On("/verdict").SkipWhile(v => v.Json.GetProperty("threshold").GetDouble() != 4.5).ToList();
        Assert.DoesNotContain(after, v => v.Json.GetProperty("verdict").GetString() == "warming_up");

        // Commands: a reset by its old name (acknowledged; the engine warms up again), an unknown one refused.
        await probe.PublishAsync("edgeinspector/testline/cam1/command", """{"id":"r1","command":"reset_coreset"}""");
        await probe.PublishAsync("edgeinspector/testline/cam1/command", """{"id":"x1","command":"explode"}""");
        await probe.WaitFor(p => p.On("/command/ack").Count >= 2, TimeSpan.FromSeconds(30), "two acknowledgements", service.Process);
        var acks = probe.On("/command/ack").Select(a => a.Json).ToDictionary(a => a.GetProperty("id").GetString()!);
        Assert.True(acks["r1"].GetProperty("ok").GetBoolean());
        Assert.False(acks["x1"].GetProperty("ok").GetBoolean());
        Assert.Contains("reset_coreset", acks["x1"].GetProperty("message").GetString());
        int acked = probe.On("/verdict").Count;
        await probe.WaitFor(p => p.On("/verdict").Skip(acked).Any(v => v.Json.GetProperty("verdict").GetString() == "warming_up"), TimeSpan.FromSeconds(30), "warming_up after the reset", service.Process);

        // Malformed commands, through the broker as a line would send them: each one answered, refused.
        foreach (string bad in new[] { """{"id":"m1","command":5}""", "[1,2]", "null", """{"id":"m4","command":"switch_recipe","recipe":7}""" })
        {
            await probe.PublishAsync("edgeinspector/testline/cam1/command", bad);
        }
        await probe.WaitFor(p => p.On("/command/ack").Count >= 6, TimeSpan.FromSeconds(30), "an acknowledgement for each malformed command", service.Process);
        var refused = probe.On("/command/ack").Skip(2).Select(a => a.Json).ToList();
        Assert.All(refused, r => Assert.False(r.GetProperty("ok").GetBoolean()));
        Assert.Equal(["m1", "", "", "m4"], refused.Select(r => r.GetProperty("id").GetString()));

        // 20,000 part ids that no frame takes (replayed frames carry their file names): counted, and the
        // log says so a bounded number of times, not 19,000.
        for (int i = 0; i < 20_000; i++) await probe.PublishAsync("edgeinspector/testline/cam1/part", $"P-{i}");
        await probe.WaitFor(p => p.On("/status").LastOrDefault()?.Json.GetProperty("delivery").GetProperty("part_ids_discarded").GetInt64() == 19_000,
            TimeSpan.FromSeconds(60), "19,000 part ids counted as discarded", service.Process);
        int floodLines = service.Process.Output.Split('\n').Count(l => l.Contains("announced but no frame captured"));
        Assert.InRange(floodLines, 1, 3);

        // Product changeover: the recipe's threshold applies, acknowledged.
        await probe.PublishAsync("edgeinspector/testline/cam1/command", """{"id":"s1","command":"switch_recipe","recipe":"strict"}""");
        await probe.WaitFor(p => p.On("/command/ack").Any(a => a.Json.GetProperty("id").GetString() == "s1"), TimeSpan.FromSeconds(30), "the recipe switch acknowledged", service.Process);
        var switched = probe.On("/command/ack").Single(a => a.Json.GetProperty("id").GetString() == "s1").Json;
        Assert.True(switched.GetProperty("ok").GetBoolean(), switched.GetProperty("message").GetString());
        await probe.WaitFor(p => p.On("/verdict").LastOrDefault()?.Json.GetProperty("recipe").GetString() == "strict", TimeSpan.FromSeconds(30), "verdicts under the new recipe", service.Process);
        Assert.Equal(9.5, probe.On("/verdict").Last().Json.GetProperty("threshold").GetDouble());

        // A camera setting changed: only that pipeline restarts; frame ids go on (never reused), and the
        // recipe switched by command stays active (an acknowledged switch is not undone by a restart).
        long lastId = Ids(probe.On("/verdict")).Max();
        File.WriteAllText(service.ConfigPath, yaml.Replace("threshold: 3.0", "threshold: 4.5").Replace("fps: 4", "fps: 5"));
        // Version 3 reaches the status topic once the restarted pipeline runs.
        // (The stopping pipeline says "offline" meanwhile: that status has no config.)
        await probe.WaitFor(p => p.On("/status").Any(st => st.Json.TryGetProperty("config", out var c) && c.GetProperty("version").GetInt32() == 3), TimeSpan.FromSeconds(60), "configuration version 3 applied", service.Process);
        int before = probe.On("/verdict").Count;
        await probe.WaitFor(p => p.On("/verdict").Count >= before + 3, TimeSpan.FromSeconds(60), "verdicts after the camera's pipeline restarted", service.Process);
        Assert.Contains("settings changed, restarting its pipeline", service.Process.Output);
        var all = Ids(probe.On("/verdict"));
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.True(all.Max() > lastId + 2);
        Assert.Single(probe.On("/verdict").Select(v => v.Json.GetProperty("run_id").GetInt64()).Distinct());
        Assert.All(probe.On("/verdict").Skip(before), v => Assert.Equal("strict", v.Json.GetProperty("recipe").GetString()));
        Assert.All(probe.On("/verdict").Skip(before), v => Assert.Equal(9.5, v.Json.GetProperty("threshold").GetDouble()));
    }

    [Fact]
    public async Task Under_overload_dropped_and_timed_out_frames_are_still_answered_in_order()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 30, defects: 4);
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        // 40 fps into a 2-frame queue in front of a backbone that manages ~15 fps on this machine.
        string yaml = Yaml.Config(Yaml.Replay(folder, fps: 40, loop: false), Yaml.Broker(broker.Port), tmp.Path)
            .Replace("  inference_batch: 2", "  inference_batch: 1\n  queue_capacity: 2");
        using var service = new ServiceRun(tmp.Path, yaml);
        await probe.WaitFor(p => p.On("/verdict").Count >= 34, Long, "34 verdicts", service.Process);
        await Task.Delay(1000);
        var verdicts = probe.On("/verdict");
        Assert.Equal(Enumerable.Range(1, 34).Select(i => (long)i), Ids(verdicts));
        var dropped = verdicts.Where(v => v.Json.GetProperty("verdict").GetString() == "dropped").ToList();
        Assert.NotEmpty(dropped);
        Assert.All(dropped, d => Assert.True(d.Json.GetProperty("reject").GetBoolean())); // verdict.dropped: reject
        Assert.Contains(verdicts, v => v.Json.GetProperty("verdict").GetString() != "dropped");
        // Killed without a goodbye: the broker publishes the service's last will on the status topic.
        service.Process.Kill();
        await probe.WaitFor(p => p.On("/status").LastOrDefault()?.Json.GetProperty("state").GetString() == "offline", TimeSpan.FromSeconds(30), "the last will (status offline)");

        // A deadline no backbone can meet: every frame is answered "timeout" (the fail-safe rejects) at its
        // deadline, and the result that comes later is logged as late, not published.
        using var tmp2 = new TempFolder();
        string folder2 = ReplayFolder(tmp2.Path, good: 6, defects: 0);
        await using var probe2 = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe2.ConnectAsync();
        using var late = new ServiceRun(tmp2.Path, Yaml.Config(Yaml.Replay(folder2, fps: 4, loop: false), Yaml.Broker(broker.Port), tmp2.Path).Replace("deadline_ms: 20000", "deadline_ms: 10"));
        await probe2.WaitFor(p => p.On("/verdict").Count >= 6, Long, "6 verdicts", late.Process);
        await Task.Delay(1000);
        var timed = probe2.On("/verdict");
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), Ids(timed));
        Assert.All(timed, v => Assert.Equal("timeout", v.Json.GetProperty("verdict").GetString()));
        Assert.All(timed, v => Assert.True(v.Json.GetProperty("reject").GetBoolean()));
        Assert.Contains("late result for frame", late.Process.Output);
    }

    [Theory]
    [InlineData("managed")]
    [InlineData("onnx")] // the reservoir's scoring graphs, on the CPU provider here
    public async Task Known_good_images_let_scoring_start_at_the_first_frame(string scoring)
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 4, defects: 2);
        string goods = Path.Combine(tmp.Path, "known-good");
        Directory.CreateDirectory(goods);
        foreach (string f in Directory.GetFiles(Path.Combine(Shared.Data("mvtec_ad/bottle"), "train", "good"), "*.png").Order().Skip(20).Take(6)) File.Copy(f, Path.Combine(goods, Path.GetFileName(f)));
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        string yaml = Yaml.Config(Yaml.Replay(folder, fps: 3, loop: false), Yaml.Broker(broker.Port), tmp.Path).Replace("  batch: 8", $"  batch: 8\n  known_good_folder: {goods}\n  scoring: {scoring}");
        using var service = new ServiceRun(tmp.Path, yaml);
        await probe.WaitFor(p => p.On("/verdict").Count >= 6, Long, "6 verdicts", service.Process);
        var kinds = probe.On("/verdict").Select(v => v.Json.GetProperty("verdict").GetString()).ToList();
        Assert.DoesNotContain("warming_up", kinds);
        Assert.Contains("reservoir seeded from 6 known-good image(s)", service.Process.Output);
        // The two broken bottles score far above the four good ones.
        var z = probe.On("/verdict").Select(v => v.Json.GetProperty("score").GetDouble()).ToList();
        Assert.True(z.Skip(4).Min() > z.Take(4).Max(), $"scores {string.Join(", ", z)}");
        var engine = probe.On("/status").Last().Json.GetProperty("engine");
        Assert.Equal(scoring, engine.GetProperty("scoring").GetString());
        Assert.Equal(scoring, engine.GetProperty("views").GetString());
    }

    [Fact]
    public async Task Invalid_config_at_start_exits_non_zero_naming_every_problem()
    {
        using var tmp = new TempFolder();
        string yaml = Yaml.Config(Yaml.Replay(Path.Combine(tmp.Path, "nowhere"), fps: 4, loop: true), Yaml.Embedded(Ports.Free()), tmp.Path)
            .Replace("deadline_ms: 20000", "deadline_ms: 5\n  treshold: 2");
        using var service = new ServiceRun(tmp.Path, yaml);
        await service.Process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        Assert.Equal(2, service.Process.ExitCode);
        string output = service.Process.Output;
        Assert.Contains("edgeinspector.yaml:", output);
        Assert.Contains("cameras[0].replay.folder: folder not found", output);
        Assert.Contains("verdict.deadline_ms: 5 is out of range; expected 10..3600000", output);
        Assert.Contains("verdict.treshold: unknown field (did you mean 'threshold'?)", output);
        Assert.Contains("nothing was started", output);
    }

    [Fact]
    public async Task Validate_loads_and_probes_the_model_as_the_service_does()
    {
        using var tmp = new TempFolder();
        string folder = ReplayFolder(tmp.Path, good: 2, defects: 0);
        string good = Yaml.Config(Yaml.Replay(folder, fps: 4, loop: true), Yaml.Embedded(Ports.Free()), tmp.Path);
        string text = Path.Combine(tmp.Path, "model.txt"), empty = Path.Combine(tmp.Path, "empty.onnx");
        File.WriteAllText(text, "this is not a model\n");
        File.WriteAllBytes(empty, []);
        async Task<(int Code, string Output)> Validate(string yaml)
        {
            string path = Path.Combine(tmp.Path, $"v{Guid.NewGuid():N}.yaml");
            File.WriteAllText(path, yaml);
            using var p = new ChildProcess("dotnet", [ServiceRun.ServiceDll, "validate", "--config", path]);
            await p.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
            return (p.ExitCode, p.Output);
        }
        var ok = await Validate(good);
        Assert.True(ok.Code == 0, ok.Output);
        Assert.Contains("model loaded and probed", ok.Output);
        Assert.Contains("taps [stage2, stage3]", ok.Output);
        Assert.DoesNotContain("note:", ok.Output);
        // A replay folder with no images yet is valid (the camera waits for them), and validate says so.
        string bare = Directory.CreateDirectory(Path.Combine(tmp.Path, "bare")).FullName;
        File.WriteAllText(Path.Combine(bare, "readme.txt"), "not an image\n");
        var waiting = await Validate(good.Replace(folder, bare));
        Assert.True(waiting.Code == 0, waiting.Output);
        Assert.Contains($"cameras[0].replay.folder: no images in {bare} (.png, .jpg, .jpeg, .bmp, .tif, .tiff, searched recursively); camera cam1 will wait for them, retrying", waiting.Output);

        var cases = new (string Yaml, string Expected)[]
        {
            (good.Replace(Yaml.Model, text), "model.path: '" + text + "' could not be loaded as an ONNX model"),
            (good.Replace(Yaml.Model, empty), "model.path: '" + empty + "' could not be loaded as an ONNX model"),
            (good.Replace("  providers: [cpu]", "  providers: [cpu]\n  taps: [stage2, stage9]"), "model.taps: 'stage9' is not an output of"),
            // Four tile positions, each a warm-up batch of 8 frames and a reservoir of 64: over 100 MB with this model.
            (good.Replace("  batch: 8", "  batch: 8\n  memory_mb: 100\n  tiles: {cols: 2, rows: 2}"), "engine.memory_mb: each camera's engine would hold up to"),
        };
        foreach (var (yaml, expected) in cases)
        {
            var (code, output) = await Validate(yaml);
            Assert.True(code == 2, $"validate exited {code} for a config it should refuse:\n{output}");
            Assert.Contains(expected, output);
            Assert.Contains("is not valid; nothing was started", output);
            // The service refuses the same config at start, with the same message, and exits 2 (no restart loop).
            using var run = new ServiceRun(Path.Combine(tmp.Path), yaml);
            await run.Process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
            Assert.Equal(2, run.Process.ExitCode);
            Assert.Contains(expected, run.Process.Output);
        }
    }
}
