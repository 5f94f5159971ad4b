using System.Text.Json;
using EdgeInspector.Integration.Tests;
using Xunit.Abstractions;
using static EdgeInspector.Service.Tests.ReplayFolders;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// The PLC's trigger end to end: the service as a process, a real mosquitto, a replay and the Aravis fake
/// camera triggered by messages on the trigger topic.
/// </summary>
public class PlcTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    private static List<string?> Parts(List<Received> verdicts) => [.. verdicts.Select(v => v.Json.GetProperty("part_id").GetString())];

    /// <summary>Waits for the one verdict that answers <paramref name="part"/> on the GigE line, and returns it.</summary>
    private static async Task<JsonElement> AnswerTo(GigeLine line, string part, string what, TimeSpan? within = null)
    {
        await line.Probe.WaitFor(p => Parts(p.On("/verdict")).Contains(part), within ?? Long, what, line.Service.Process);
        return line.Probe.On("/verdict").Single(v => v.Json.GetProperty("part_id").GetString() == part).Json;
    }

    private static async Task Trigger(Probe probe, string camera, params string[] parts)
    {
        foreach (string part in parts)
        {
            await probe.PublishAsync($"edgeinspector/testline/{camera}/trigger", JsonSerializer.Serialize(new { part_id = part, id = "t-" + part }));
            await Task.Delay(150);
        }
    }

    [Fact]
    public async Task A_triggered_replay_answers_each_trigger_once_with_exactly_its_part_id_and_captures_nothing_else()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 12, defects: 2);
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        string cam = Yaml.Replay(folder, fps: 4, loop: true) + "\n      trigger: plc";
        using var service = new ServiceRun(tmp.Path, Yaml.Config(cam, Yaml.Broker(broker.Port), tmp.Path));
        await probe.WaitFor(p => p.On("/status").LastOrDefault()?.Json.GetProperty("camera_state").GetString() == "streaming", Long, "the replay open", service.Process);
        await Task.Delay(1000);
        Assert.Empty(probe.On("/verdict")); // no trigger, no frame

        // Ten to warm the engine (batch 8), then four more once it is warm.
        string[] parts = [.. Enumerable.Range(1, 14).Select(i => $"T-{i:D2}")];
        await Trigger(probe, "cam1", parts[..10]);
        await probe.WaitFor(p => p.On("/verdict").Count >= 10 && p.On("/status").Last().Json.GetProperty("engine").GetProperty("warm").GetBoolean(), Long, "10 verdicts and a warm engine", service.Process);
        await Trigger(probe, "cam1", parts[10..]);
        await probe.WaitFor(p => p.On("/verdict").Count >= 14, Long, "14 verdicts", service.Process);
        await Task.Delay(1500);
        var verdicts = probe.On("/verdict");
        Assert.Equal(parts, Parts(verdicts)); // one each, in order, with exactly the trigger's part id
        var ids = verdicts.Select(v => v.Json.GetProperty("frame_id").GetInt64()).ToList();
        Assert.Equal(ids.Order(), ids);
        Assert.All(verdicts[10..], v => Assert.Contains(v.Json.GetProperty("verdict").GetString(), new[] { "pass", "fail", "unsure" })); // scored once warm

        // A malformed trigger is refused on the acknowledgement topic, and causes no frame.
        await probe.PublishAsync("edgeinspector/testline/cam1/trigger", "{\"id\":\"bad-1\",\"part\":\"T-15\"}");
        await probe.WaitFor(p => p.On("/command/ack").Any(a => a.Json.GetProperty("id").GetString() == "bad-1"), TimeSpan.FromSeconds(20), "the refusal", service.Process);
        var ack = probe.On("/command/ack").Single(a => a.Json.GetProperty("id").GetString() == "bad-1").Json;
        Assert.False(ack.GetProperty("ok").GetBoolean());
        Assert.Equal("trigger", ack.GetProperty("command").GetString());
        Assert.Contains("part_id", ack.GetProperty("message").GetString());
        await Task.Delay(1000);
        Assert.Equal(14, probe.On("/verdict").Count);
        output.WriteLine($"14 triggers, 14 verdicts: {string.Join(" ", verdicts.Select(v => $"{v.Json.GetProperty("part_id").GetString()}:{v.Json.GetProperty("verdict").GetString()}"))}");
    }

    [Fact]
    public async Task A_trigger_the_camera_had_taken_when_it_stopped_answering_still_gets_one_verdict()
    {
        // The source takes a trigger from the queue and fires it, but the camera has hung (SIGSTOP): the
        // software trigger gets no answer. The part must still be answered, once, and say why.
        await using var line = await GigeLine.StartAsync("plc");
        var (camera, probe, service) = (line.Camera, line.Probe, line.Service);
        await probe.WaitFor(_ => line.CameraState == "streaming", Long, "the camera open", service.Process);

        // While no trigger comes the source checks the camera every second (timeout_ms); if that check runs
        // between the freeze and the trigger, it finds the camera gone first and the trigger is answered as
        // one that waited. That is a right answer too, but not this case: try again.
        var parts = new List<string>();
        string? served = null;
        for (int attempt = 1; attempt <= 3 && served is null; attempt++)
        {
            string part = $"G-hung-{attempt}";
            parts.Add(part);
            camera.Pause();
            await Trigger(probe, "gige1", part);
            var verdict = await AnswerTo(line, part, $"the answer for {part}");
            Assert.Equal("error", verdict.GetProperty("verdict").GetString());
            Assert.Equal(6, verdict.GetProperty("error_code").GetInt32());
            Assert.True(verdict.GetProperty("reject").GetBoolean());
            string error = verdict.GetProperty("error").GetString()!;
            output.WriteLine($"attempt {attempt}: {error}");
            if (error.Contains($"TriggerSoftware for part {part}")) served = error;
            camera.Resume();
            // Back once the source has reopened it (a status sent before the loss still says streaming).
            int reopened = attempt;
            await probe.WaitFor(p => p.On("/status").LastOrDefault() is { } st && st.Json.GetProperty("camera_state").GetString() == "streaming"
                && st.Json.GetProperty("camera_counters").GetProperty("reconnects").GetInt64() >= reopened, Long, "the camera reopened", service.Process);
        }
        Assert.NotNull(served);
        Assert.StartsWith("trigger for part G-hung-", served);
        Assert.Contains("camera lost before its frame", served);

        // Back: the next trigger gets its frame, and every part was answered exactly once, in order.
        await Trigger(probe, "gige1", "G-after");
        await AnswerTo(line, "G-after", "a verdict after the camera came back");
        await Task.Delay(1500);
        Assert.Equal([.. parts, "G-after"], Parts(probe.On("/verdict")));
        var after = probe.On("/verdict").Last().Json;
        output.WriteLine($"after: {after}");
        Assert.NotEqual("error", after.GetProperty("verdict").GetString());
    }

    [Fact]
    public async Task A_trigger_the_camera_took_when_the_service_is_stopped_is_answered_before_the_service_exits()
    {
        // SIGTERM (systemd's stop) while the source serves a trigger the hung camera (SIGSTOP) cannot
        // answer: the stop waits for that trigger's outcome and publishes its verdict before it exits.
        await using var line = await GigeLine.StartAsync("plc");
        var (camera, probe, service) = (line.Camera, line.Probe, line.Service);
        await probe.WaitFor(_ => line.CameraState == "streaming", Long, "the camera open", service.Process);
        await Trigger(probe, "gige1", "G-1");
        await AnswerTo(line, "G-1", "the first verdict");

        camera.Pause();
        await Trigger(probe, "gige1", "G-stop");
        await Task.Delay(300); // taken and fired at the camera, which does not answer
        service.Process.Terminate();
        using (var exit = new CancellationTokenSource(TimeSpan.FromSeconds(60))) await service.Process.WaitForExitAsync(exit.Token);
        camera.Resume();
        output.WriteLine(service.Process.Output);
        Assert.Equal(0, service.Process.ExitCode);
        await Task.Delay(500);
        Assert.Equal(["G-1", "G-stop"], Parts(probe.On("/verdict")));
        var stopped = probe.On("/verdict").Last().Json;
        output.WriteLine($"G-stop: {stopped}");
        Assert.Equal("error", stopped.GetProperty("verdict").GetString());
        Assert.True(stopped.GetProperty("reject").GetBoolean());
        Assert.Contains("G-stop", stopped.GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_triggered_GigE_camera_takes_one_frame_per_trigger_and_a_trigger_while_it_is_lost_is_answered_camera_lost()
    {
        await using var line = await GigeLine.StartAsync("plc");
        var (camera, probe, service) = (line.Camera, line.Probe, line.Service);
        await probe.WaitFor(_ => line.CameraState == "streaming", Long, "the camera open", service.Process);
        await Task.Delay(1500);
        Assert.Empty(probe.On("/verdict")); // software-triggered: no trigger, no frame

        await Trigger(probe, "gige1", "G-1", "G-2", "G-3");
        await probe.WaitFor(p => p.On("/verdict").Count >= 3, Long, "3 verdicts", service.Process);
        await Task.Delay(1500);
        Assert.Equal(["G-1", "G-2", "G-3"], Parts(probe.On("/verdict")));

        camera.Kill();
        await probe.WaitFor(_ => line.CameraState == "lost", TimeSpan.FromSeconds(30), "the camera seen lost", service.Process);
        await Trigger(probe, "gige1", "G-lost");
        var lost = await AnswerTo(line, "G-lost", "the answer to a trigger while the camera is lost", TimeSpan.FromSeconds(10));
        Assert.Equal("error", lost.GetProperty("verdict").GetString());
        Assert.Equal(6, lost.GetProperty("error_code").GetInt32());
        Assert.True(lost.GetProperty("reject").GetBoolean());
        Assert.False(probe.On("/status").Last().Json.GetProperty("ready").GetBoolean());

        // Back: triggers are served again, and the one answered while it was away is not served twice.
        await camera.StartAsync();
        await probe.WaitFor(_ => line.CameraState == "streaming", Long, "the camera back", service.Process);
        await Trigger(probe, "gige1", "G-4");
        await AnswerTo(line, "G-4", "a verdict after the camera came back");
        await Task.Delay(1500);
        Assert.Equal(["G-1", "G-2", "G-3", "G-lost", "G-4"], Parts(probe.On("/verdict")));
        output.WriteLine($"verdicts: {string.Join(" ", probe.On("/verdict").Select(v => $"{v.Json.GetProperty("part_id").GetString()}:{v.Json.GetProperty("verdict").GetString()}/{v.Json.GetProperty("error_code").GetInt32()}"))}");
    }
}
