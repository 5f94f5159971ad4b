using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MQTTnet;

[assembly: CollectionBehavior(DisableTestParallelization = true)]
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace EdgeInspector.Service.Tests;

/// <summary>Loopback ports nobody listens on.</summary>
internal static class Ports
{
    public static int Free()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public static async Task WaitListening(int port, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }
        throw new TimeoutException($"nothing listens on 127.0.0.1:{port} after {timeout.TotalSeconds} s");
    }
}

/// <summary>A child process whose output is kept for assertions and failure messages.</summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _p;
    private readonly StringBuilder _out = new();

    public ChildProcess(string file, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        string? path = FindOnPath(file);
        if (path is null) throw new InvalidOperationException($"'{file}' is not installed: run scripts/setup.sh (it installs mosquitto and aravis-tools)");
        var psi = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_out) _out.AppendLine(e.Data); };
        _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_out) _out.AppendLine(e.Data); };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    public string Output { get { lock (_out) return _out.ToString(); } }

    public bool HasExited => _p.HasExited;

    public int Id => _p.Id;

    public int ExitCode => _p.ExitCode;

    public Task WaitForExitAsync(CancellationToken ct) => _p.WaitForExitAsync(ct);

    /// <summary>SIGKILL: the process gets no chance to clean up (a crash, a pulled cable).</summary>
    public void Kill()
    {
        if (!_p.HasExited) _p.Kill(entireProcessTree: true);
        _p.WaitForExit(5000);
    }

    /// <summary>SIGTERM: what systemd sends on stop.</summary>
    public void Terminate()
    {
        if (!_p.HasExited) Process.Start("kill", ["-TERM", _p.Id.ToString()])!.WaitForExit();
    }

    public void Dispose()
    {
        Kill();
        _p.Dispose();
    }

    private static string? FindOnPath(string file)
    {
        if (Path.IsPathRooted(file)) return File.Exists(file) ? file : null;
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/usr/bin"]))
        {
            string p = Path.Combine(dir, file);
            if (File.Exists(p)) return p;
        }
        return null;
    }
}

/// <summary>A received MQTT message.</summary>
internal sealed record Received(string Topic, byte[] Payload, IReadOnlyDictionary<string, string> Properties, DateTimeOffset At)
{
    public string Text => Encoding.UTF8.GetString(Payload);

    public JsonElement Json => JsonDocument.Parse(Payload).RootElement;
}

/// <summary>An MQTT subscriber that records everything under a filter and reconnects when told.</summary>
internal sealed class Probe : IAsyncDisposable
{
    private readonly IMqttClient _client = new MqttClientFactory().CreateMqttClient();
    private readonly int _port;
    private readonly string _filter;
    private readonly string _id = "probe-" + Guid.NewGuid().ToString("N")[..8];
    public readonly ConcurrentQueue<Received> Messages = new();

    public Probe(int port, string filter)
    {
        _port = port;
        _filter = filter;
        _client.ApplicationMessageReceivedAsync += e =>
        {
            var props = new Dictionary<string, string>();
            foreach (var p in e.ApplicationMessage.UserProperties ?? []) props[p.Name] = Encoding.UTF8.GetString(p.ValueBuffer.Span);
            Messages.Enqueue(new Received(e.ApplicationMessage.Topic, System.Buffers.BuffersExtensions.ToArray(e.ApplicationMessage.Payload), props, DateTimeOffset.UtcNow));
            return Task.CompletedTask;
        };
    }

    public async Task ConnectAsync()
    {
        // A persistent session: what the broker queued for the probe while it was away is delivered.
        var o = new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", _port).WithClientId(_id)
            .WithCleanStart(false).WithSessionExpiryInterval(3600)
            .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500).Build();
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await _client.ConnectAsync(o);
                break;
            }
            catch (Exception) when (sw.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(100);
            }
        }
        await _client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(_filter, MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce).Build());
    }

    public Task PublishAsync(string topic, string payload) => _client.PublishStringAsync(topic, payload, MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce);

    public List<Received> On(string suffix) => [.. Messages.Where(m => m.Topic.EndsWith(suffix, StringComparison.Ordinal))];

    /// <summary>
    /// Waits for a verdict that arrived just now and found the service caught up: at least <paramref name="count"/>
    /// verdicts, the last decided within <paramref name="maxLatencyMs"/> of its capture (under the frame interval,
    /// so no frame was queued behind it), captured at least as long after the one before (the replay on its
    /// pace, not catching up in a burst after a stall on a loaded machine, when the next frame follows at once)
    /// and received under 30 ms ago. A broker killed then has no verdict in flight to the probe. One it had acknowledged but not yet forwarded would be the broker's loss, not the
    /// service's, and would read as a hole in the sequence (the start's backlog comes in a burst).
    /// </summary>
    public Task WaitForCaughtUpVerdict(int count, double maxLatencyMs, TimeSpan timeout, ChildProcess service) =>
        WaitFor(p =>
        {
            var verdicts = p.On("/verdict");
            if (verdicts.Count < count) return false;
            var last = verdicts[^1];
            return DateTimeOffset.UtcNow - last.At < TimeSpan.FromMilliseconds(30)
                && last.Json.GetProperty("latency_ms").GetDouble() < maxLatencyMs
                && last.Json.GetProperty("timestamp_ms").GetInt64() - verdicts[^2].Json.GetProperty("timestamp_ms").GetInt64() >= maxLatencyMs;
        }, timeout, $"a verdict decided within {maxLatencyMs} ms of its capture, after {count}", service, TimeSpan.FromMilliseconds(5));

    /// <summary>Waits until <paramref name="done"/> holds; fails with what was received so far.</summary>
    public async Task WaitFor(Func<Probe, bool> done, TimeSpan timeout, string what, ChildProcess? service = null, TimeSpan? poll = null)
    {
        var sw = Stopwatch.StartNew();
        while (!done(this))
        {
            if (sw.Elapsed > timeout)
            {
                string topics = string.Join(", ", Messages.GroupBy(m => m.Topic).Select(g => $"{g.Key}×{g.Count()}"));
                Assert.Fail($"timed out after {timeout.TotalSeconds} s waiting for {what}; received: {topics}\nservice output (tail):\n{Tail(service?.Output)}");
            }
            if (service is { HasExited: true }) Assert.Fail($"the service exited ({service.ExitCode}) while waiting for {what}:\n{Tail(service.Output)}");
            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(100));
        }
    }

    public static string Tail(string? s) => s is null ? "" : s.Length > 6000 ? s[^6000..] : s;

    public async ValueTask DisposeAsync()
    {
        if (_client.IsConnected) await _client.DisconnectAsync();
        _client.Dispose();
    }
}

/// <summary>The service as its own process, from a YAML text written into a temporary folder.</summary>
internal sealed class ServiceRun : IDisposable
{
    public ServiceRun(string dir, string yaml, IDictionary<string, string>? env = null)
    {
        ConfigPath = Path.Combine(dir, "edgeinspector.yaml");
        File.WriteAllText(ConfigPath, yaml);
        Process = new ChildProcess("dotnet", [ServiceDll, "run", "--config", ConfigPath], env);
    }

    public string ConfigPath { get; }

    public ChildProcess Process { get; }

    /// <summary>The service's build output: the same configuration (Debug/Release) as this test assembly.</summary>
    public static string ServiceDll { get; } = FindDll();

    private static string FindDll()
    {
        string config = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string dll = Path.Combine(d.FullName, "src", "EdgeInspector.Service", "bin", config, "net10.0", "edgeinspector.dll");
            if (File.Exists(dll)) return dll;
        }
        throw new InvalidOperationException($"edgeinspector.dll ({config}) not found above {AppContext.BaseDirectory}: build the solution first");
    }

    public void Dispose() => Process.Dispose();
}

/// <summary>Configuration texts for the tests: small batches so the engine warms up in seconds.</summary>
internal static class Yaml
{
    public static string Model => Integration.Tests.Shared.Model("resnet50v2_features.onnx");

    /// <param name="httpPort">The web front's loopback port (default: a free one, so that tests never meet on 8080).</param>
    public static string Config(string camera, string mqtt, string dir, string extra = "", int? httpPort = null) => $"""
line: testline
cameras:
{camera}
model:
  path: {Model}
  providers: [cpu]
engine:
  batch: 8
  inference_batch: 2
verdict:
  threshold: 3.0
  deadline_ms: 20000
heatmap:
  publish: all
mqtt:
{mqtt}
  spool_dir: {dir}/spool
  status_interval_s: 0.5
logging:
  dir: {dir}/logs
archive:
  dir: {dir}/archive
  save: fails
http:
  listen: 127.0.0.1:{httpPort ?? Ports.Free()}
{extra}
""";

    public static string Replay(string folder, double fps, bool loop, string order = "name") => $"""
  - name: cam1
    source: replay
    replay:
      folder: {folder}
      fps: {fps.ToString(System.Globalization.CultureInfo.InvariantCulture)}
      loop: {(loop ? "true" : "false")}
      order: {order}
""";

    /// <summary>Camera gige1: the Aravis fake camera on 127.0.0.1, with short timeouts so that a lost camera is seen in seconds.</summary>
    public static string Gige(string trigger) => $"""
  - name: gige1
    source: gige
    gige:
      camera: 127.0.0.1
      pixel_format: Mono8
      trigger: {trigger}
      frame_rate: 4
      timeout_ms: 1000
      reconnect_max_s: 1
""";

    public static string Broker(int port) => $"  host: 127.0.0.1\n  port: {port}";

    public static string Embedded(int port) => $"  host: \"\"\n  port: {port}";
}

/// <summary>
/// A small tmpfs mounted for one test: a real filesystem that really fills up ("No space left on
/// device"). Mounting needs root, which CI and the test command run as; elsewhere it fails saying so.
/// </summary>
internal sealed class SmallDisk : IDisposable
{
    public SmallDisk(string path, long bytes)
    {
        Path = path;
        Directory.CreateDirectory(path);
        using var p = new ChildProcess("mount", ["-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", path]);
        p.WaitForExitAsync(CancellationToken.None).Wait(TimeSpan.FromSeconds(20));
        if (p.ExitCode != 0) throw new InvalidOperationException($"mounting a {bytes}-byte tmpfs at {path} failed (the full-disk tests run as root): {p.Output}");
    }

    public string Path { get; }

    public long Used
    {
        get
        {
            var d = new DriveInfo(Path);
            return d.TotalSize - d.AvailableFreeSpace;
        }
    }

    public void Dispose()
    {
        using var p = new ChildProcess("umount", ["-l", Path]);
        p.WaitForExitAsync(CancellationToken.None).Wait(TimeSpan.FromSeconds(20));
    }
}

/// <summary>The TCP sockets a process listens on, read from /proc (what <c>ss -ltnp</c> shows).</summary>
internal static class Listeners
{
    public static List<IPEndPoint> Of(int pid)
    {
        var inodes = new HashSet<string>();
        foreach (string fd in Directory.EnumerateFiles($"/proc/{pid}/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget is { } t && t.StartsWith("socket:[", StringComparison.Ordinal)) inodes.Add(t[8..^1]);
            }
            catch (IOException)
            {
                // closed meanwhile
            }
        }
        var result = new List<IPEndPoint>();
        foreach (string table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            foreach (string line in File.ReadLines(table).Skip(1))
            {
                string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f[3] != "0A" || !inodes.Contains(f[9])) continue; // 0A: LISTEN
                string[] local = f[1].Split(':');
                // The kernel prints each 32-bit word of the address in host (little-endian) order.
                byte[] bytes = Convert.FromHexString(local[0]);
                for (int w = 0; w < bytes.Length; w += 4) Array.Reverse(bytes, w, 4);
                result.Add(new IPEndPoint(new IPAddress(bytes), Convert.ToInt32(local[1], 16)));
            }
        }
        return result;
    }
}

/// <summary>Replay folders of real images for the service tests, and what they read back.</summary>
internal static class ReplayFolders
{
    /// <summary>The frame ids of received verdicts, in arrival order.</summary>
    public static List<long> Ids(IEnumerable<Received> verdicts) => [.. verdicts.Select(v => v.Json.GetProperty("frame_id").GetInt64())];

    /// <summary>Copies real bottle images into a replay folder, named so that name order is line order.</summary>
    public static string ReplayFolder(string root, int good, int defects, int corruptAt = -1)
    {
        string dir = Path.Combine(root, "replay");
        Directory.CreateDirectory(dir);
        string bottle = Integration.Tests.Shared.Data("mvtec_ad/bottle");
        var goods = Directory.GetFiles(Path.Combine(bottle, "train", "good"), "*.png").Order().Take(good);
        if (goods.Count() < good) throw new InvalidOperationException($"{bottle}/train/good holds fewer than {good} images");
        var bad = Directory.GetFiles(Path.Combine(bottle, "test", "broken_large"), "*.png").Order().Take(defects);
        int i = 0;
        foreach (string f in goods.Concat(bad))
        {
            if (i == corruptAt) File.WriteAllBytes(Path.Combine(dir, $"{i++:D3}_corrupt.png"), Encoding.ASCII.GetBytes("\x89PNG this is not an image"));
            File.Copy(f, Path.Combine(dir, $"{i++:D3}_{Path.GetFileName(Path.GetDirectoryName(f))}.png"));
        }
        return dir;
    }
}
