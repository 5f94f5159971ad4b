using System.Net.Sockets;
using System.Text.Json;
using EdgeInspector.Integration.Tests;
using Xunit.Abstractions;
using static EdgeInspector.Service.Tests.ReplayFolders;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// Delivery end to end: the service as a process against a real broker that is killed, secured, or
/// left without disk for its spool, and the embedded broker's listeners. No verdict is lost silently.
/// </summary>
public class DeliveryTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Broker_killed_mid_run_and_restarted_loses_no_verdict()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 26, defects: 4);
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        using var service = new ServiceRun(tmp.Path, Yaml.Config(Yaml.Replay(folder, fps: 3, loop: false), Yaml.Broker(broker.Port), tmp.Path));
        // Cut when no verdict is on its way to the probe (333 ms between frames).
        await probe.WaitForCaughtUpVerdict(4, 250, Long, service.Process);

        broker.Kill();                                   // SIGKILL: no goodbye to anyone
        // Frames keep coming: their verdicts go to the spool. (6 s: the service's reconnect back-off,
        // 0.25+0.5+1+2 s, must not land right on the restart, or it might beat the probe to the broker.)
        await Task.Delay(TimeSpan.FromSeconds(6));
        Assert.True(Directory.EnumerateFiles(Path.Combine(tmp.Path, "spool"), "*.msg", SearchOption.AllDirectories).Any(), "nothing was spooled during the outage");
        await broker.StartAsync();
        await probe.ConnectAsync();

        await probe.WaitFor(p => Ids(p.On("/verdict")).Distinct().Count() >= 30, Long, "all 30 verdicts after the outage", service.Process);
        var ids = Ids(probe.On("/verdict"));
        Assert.Equal(Enumerable.Range(1, 30).Select(i => (long)i), ids.Distinct().Order());
        // Delivered in order (a redelivery after the cut may repeat the last one sent).
        var firstSeen = ids.Distinct().ToList();
        Assert.Equal(firstSeen.Order(), firstSeen);
        Assert.Contains("spool", service.Process.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Tls_and_password_from_the_environment_reach_a_secured_broker()
    {
        using var tmp = new TempFolder();
        using var broker = Mosquitto.Secured(tmp.Path, "line", "s3cret-pw", out string ca);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 3, defects: 0);
        string mqtt = $"  host: 127.0.0.1\n  port: {broker.Port}\n  username: line\n  password_env: EI_TEST_MQTT_PASSWORD\n  tls:\n    enabled: true\n    ca_file: {ca}";
        using var service = new ServiceRun(tmp.Path, Yaml.Config(Yaml.Replay(folder, fps: 4, loop: false), mqtt, tmp.Path),
            new Dictionary<string, string> { ["EI_TEST_MQTT_PASSWORD"] = "s3cret-pw" });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!service.Process.Output.Contains("MQTT connected") && sw.Elapsed < Long && !service.Process.HasExited) await Task.Delay(100);
        Assert.Contains("MQTT connected to 127.0.0.1", service.Process.Output);
        Assert.DoesNotContain("s3cret-pw", service.Process.Output);
        // (allow_anonymous false: connecting at all proves the user and password were sent and accepted.)

        // The wrong password is refused by the broker, reported, and the service keeps spooling.
        using var tmp2 = new TempFolder();
        string folder2 = ReplayFolder(tmp2.Path, good: 3, defects: 0);
        using var refused = new ServiceRun(tmp2.Path, Yaml.Config(Yaml.Replay(folder2, fps: 4, loop: false), mqtt, tmp2.Path),
            new Dictionary<string, string> { ["EI_TEST_MQTT_PASSWORD"] = "wrong" });
        sw.Restart();
        while (!refused.Process.Output.Contains("refused the connection") && sw.Elapsed < Long && !refused.Process.HasExited) await Task.Delay(100);
        Assert.Contains("refused the connection", refused.Process.Output);
        Assert.False(refused.Process.HasExited);
    }

    [Fact]
    public async Task Killed_during_an_outage_it_loses_no_verdict_decided_before_the_spool_bound()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 20, defects: 0);
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/verdict");
        await probe.ConnectAsync();
        string yaml = Yaml.Config(Yaml.Replay(folder, fps: 5, loop: true), Yaml.Broker(broker.Port), tmp.Path);
        long runId;
        using (var first = new ServiceRun(tmp.Path, yaml))
        {
            // Cut when no verdict is on its way to the probe (200 ms between frames).
            await probe.WaitForCaughtUpVerdict(3, 150, Long, first.Process);
            runId = probe.Messages.First().Json.GetProperty("run_id").GetInt64();
            broker.Kill();
            // 6.5 s: past the reconnect back-off's early steps (0.25, 0.5, 1, 2, 4 s), so that a link that
            // spooled only between connection attempts would be holding seconds of verdicts in memory.
            await Task.Delay(TimeSpan.FromSeconds(6.5));
            var killedAt = DateTimeOffset.UtcNow;
            first.Process.Kill(); // SIGKILL: no shutdown, no chance to flush
            await broker.StartAsync();
            await probe.ConnectAsync();
            using var second = new ServiceRun(tmp.Path, yaml);
            // The restarted service delivers the spool before anything of its own.
            await probe.WaitFor(p => p.Messages.Any(m => m.Json.GetProperty("run_id").GetInt64() != runId), Long, "the restarted service's first verdict", second.Process);
            var delivered = probe.Messages.Select(m => m.Json).Where(j => j.GetProperty("run_id").GetInt64() == runId).ToList();
            var ids = delivered.Select(j => j.GetProperty("frame_id").GetInt64()).Distinct().Order().ToList();
            // No hole: every frame up to the last one delivered.
            Assert.Equal(Enumerable.Range(1, ids.Count).Select(i => (long)i), ids);
            // The last frame delivered was decided (captured + latency) close before the kill: the next
            // frame, decided later, was within the bound and the frame interval (200 ms) of the kill.
            var last = delivered.Last(j => j.GetProperty("frame_id").GetInt64() == ids[^1]);
            var decided = DateTimeOffset.FromUnixTimeMilliseconds(last.GetProperty("timestamp_ms").GetInt64()).AddMilliseconds(last.GetProperty("latency_ms").GetDouble());
            double gapMs = (killedAt - decided).TotalMilliseconds;
            output.WriteLine($"SIGKILL {6.5} s into an outage: {ids.Count} frames delivered after the restart, the last decided {gapMs:0} ms before the kill");
            Assert.True(gapMs < Mqtt.MqttLink.SpoolLatencyBound.TotalMilliseconds + 200 + 350,
                $"the last verdict delivered was decided {gapMs:0} ms before the kill: frames decided after it were lost ({ids.Count} frames delivered)");
            Assert.True(ids.Count >= 20, $"only {ids.Count} frames before the kill");
            // Then the new run's frames, numbered after the spooled ones: a PLC on the reject topic, which
            // carries no run, de-duplicates by the frame id alone and takes none of them for one it has seen.
            var order = probe.Messages.Select(m => m.Json).ToList();
            int firstNew = order.FindIndex(j => j.GetProperty("run_id").GetInt64() != runId);
            int lastOld = order.FindLastIndex(j => j.GetProperty("run_id").GetInt64() == runId);
            Assert.True(lastOld < firstNew, $"a spooled verdict (message {lastOld}) came after the new run's first (message {firstNew})");
            Assert.True(order[firstNew].GetProperty("frame_id").GetInt64() > ids[^1],
                $"the restarted service's first frame is {order[firstNew].GetProperty("frame_id").GetInt64()}, after the spooled frames up to {ids[^1]}");
        }
    }

    [Fact]
    public async Task A_spool_on_a_full_disk_costs_only_the_oldest_verdicts_and_delivery_resumes_when_the_broker_returns()
    {
        using var tmp = new TempFolder();
        using var disk = new SmallDisk(Path.Combine(tmp.Path, "disk"), 256 * 1024); // room for about 60 spool files
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 20, defects: 0);
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        string yaml = Yaml.Config(Yaml.Replay(folder, fps: 8, loop: true), Yaml.Broker(broker.Port), tmp.Path)
            .Replace($"  spool_dir: {tmp.Path}/spool", $"  spool_dir: {disk.Path}/spool\n  spool_min_free_mb: 0")
            .Replace("heatmap:\n  publish: all", "heatmap:\n  publish: none");
        using var service = new ServiceRun(tmp.Path, yaml);
        await probe.WaitFor(p => p.On("/verdict").Count >= 3, Long, "the first verdicts", service.Process);
        broker.Kill();
        await Task.Delay(TimeSpan.FromSeconds(12)); // ~95 frames, ~190 messages: three times what the disk holds
        await broker.StartAsync();
        await probe.ConnectAsync();
        int before = probe.On("/verdict").Count;
        // Delivery resumes: what the disk kept, then live verdicts.
        await probe.WaitFor(p => p.On("/verdict").Count >= before + 40, Long, "verdicts after the broker returned", service.Process);
        await probe.WaitFor(p => p.On("/status").Last().Json.GetProperty("delivery").GetProperty("spool_overflow").GetInt64() > 0, TimeSpan.FromSeconds(20), "the overflow on the status topic", service.Process);
        var status = probe.On("/status").Last().Json;
        var d = status.GetProperty("delivery");
        // Lost in the outage, counted, and the status says the pipeline is not whole.
        Assert.Equal("degraded", status.GetProperty("state").GetString());
        Assert.Contains("lost in delivery", status.GetProperty("stages").GetProperty("publish").GetProperty("last_error").GetString());
        Assert.Equal(0, d.GetProperty("verdicts_unpublished").GetInt64());
        // The counters balance: every message the link was given is published, held, or counted lost.
        long accounted = d.GetProperty("published").GetInt64() + d.GetProperty("refused").GetInt64() + d.GetProperty("spool_overflow").GetInt64()
            + d.GetProperty("spool_write_failed").GetInt64() + d.GetProperty("spool_corrupt").GetInt64()
            + status.GetProperty("queues").GetProperty("outgoing").GetInt64() + status.GetProperty("queues").GetProperty("spool").GetInt64();
        long given = d.GetProperty("enqueued").GetInt64() + d.GetProperty("recovered").GetInt64();
        Assert.InRange(given - accounted, 0, 1); // the one message being sent as the status was taken
        // The verdicts that arrived are in order, and the ones that did not are the oldest of the outage:
        // after the first gap, no frame is missing.
        var ids = Ids(probe.On("/verdict")).Distinct().ToList();
        Assert.Equal(ids.Order(), ids);
        var afterGap = ids.SkipWhile((id, i) => i == 0 || id == ids[i - 1] + 1).ToList();
        Assert.NotEmpty(afterGap);
        Assert.Equal(Enumerable.Range((int)afterGap[0], afterGap.Count).Select(i => (long)i), afterGap);
        var frames = status.GetProperty("frames").GetInt64();
        long answered = status.GetProperty("verdicts").EnumerateObject().Sum(v => v.Value.GetInt64());
        Assert.InRange(frames - answered, 0, 20); // the rest are in flight (queue and sequencer)
        output.WriteLine($"outage of 12 s on a 256 KiB spool disk: {d.GetProperty("spool_overflow").GetInt64()} messages overflowed, {ids.Count} verdicts delivered, first after the gap {afterGap[0]}");
    }

    [Fact]
    public async Task The_embedded_broker_and_the_web_front_listen_on_their_one_address_and_nowhere_else()
    {
        using var tmp = new TempFolder();
        int port = Ports.Free(), http = Ports.Free();
        string folder = ReplayFolder(tmp.Path, good: 4, defects: 0);
        using var service = new ServiceRun(tmp.Path, Yaml.Config(Yaml.Replay(folder, fps: 4, loop: true), Yaml.Embedded(port), tmp.Path, httpPort: http));
        await using var probe = new Probe(port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        await probe.WaitFor(p => p.On("/verdict").Count >= 1, Long, "a verdict through the embedded broker", service.Process);
        // Every socket the service listens on: the broker's 127.0.0.1:port and the web front's
        // 127.0.0.1:http, and no IPv6 wildcard beside them.
        var listening = Listeners.Of(service.Process.Id).OrderBy(e => e.Port == port ? 0 : 1).ToList();
        Assert.Equal([new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port), new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, http)], listening);
        foreach (int p in (int[])[port, http])
        {
            using var v6 = new TcpClient(AddressFamily.InterNetworkV6);
            await Assert.ThrowsAnyAsync<SocketException>(async () => await v6.ConnectAsync(System.Net.IPAddress.IPv6Loopback, p));
        }
        Assert.Contains($"listening on 127.0.0.1:{port} only", service.Process.Output);
        output.WriteLine($"listeners of the service: {string.Join(", ", listening)}");
    }
}
