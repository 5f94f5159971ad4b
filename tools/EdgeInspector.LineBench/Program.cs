using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using MQTTnet;

// edgeinspector-linebench: its options are Args.Usage (--help prints them).
//
// Starts the service (src/EdgeInspector.Service build output) on a generated config: folder replay of
// DIR/test (shuffled, looping) at F fps (0 = as fast as the replay can read), the embedded broker on a
// free loopback port, the default engine settings. Subscribes to the verdicts and measures:
//   latency   capture to publish, as the service stamps it in each verdict (latency_ms), and capture to
//             arrival at this subscriber (timestamp_ms against this clock: same machine);
//   rate      verdicts per second over the run after warm-up, by kind;
//   memory    the service's resident set (VmRSS, /proc) when frame ids cross each checkpoint.
//   CPU       the service's processor time from its first scored verdict to the end, per second of the run (100 = one core).
//   runtime   the service's garbage collections, their pause and its allocation over the same span, from its /metrics.
// Writes the summary (JSON), every frame's latency (CSV: frame, verdict, service ms, arrival ms, arrival
// time in s since the start) and a histogram of the scored frames' latency after warm-up (PNG).
if (args is ["--help"] or ["-h"])
{
    Console.WriteLine(Args.Usage);
    return 0;
}
Args opts;
try
{
    opts = Args.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine($"linebench: {e.Message}\n{Args.Usage}");
    return 2;
}
string repo = Args.Repo();
string dll = Path.Combine(repo, "src", "EdgeInspector.Service", "bin", "Release", "net10.0", "edgeinspector.dll");
if (!File.Exists(dll)) { Console.Error.WriteLine($"linebench: {dll} not found; build it: dotnet build src/EdgeInspector.Service -c Release"); return 2; }
string work = Path.Combine(Path.GetTempPath(), "ei-linebench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(work);
int port = FreePort(), httpPort = FreePort();
while (httpPort == port) httpPort = FreePort();
string yaml = $"""
line: bench
cameras:
  - name: cam1
    source: replay
    replay:
      folder: {Path.Combine(opts.Category, "test")}
      fps: {opts.Fps.ToString(CultureInfo.InvariantCulture)}
      loop: true
      order: shuffle
model:
  path: {opts.Model}
  providers: [cpu]{(opts.Taps is { } taps ? $"\n  taps: [{string.Join(", ", taps)}]" : "")}
heatmap:
  publish: fails
mqtt:
  port: {port}
  spool_dir: {work}/spool
  status_interval_s: 5
logging:
  dir: {work}/logs
archive:
  dir: {work}/archive
  save: none
http:
  listen: 127.0.0.1:{httpPort}
engine:
  tiles: {"{"} cols: {opts.TileCols}, rows: {opts.TileRows}, overlap: {opts.TileOverlap.ToString(CultureInfo.InvariantCulture)} {"}"}
  scoring: {opts.Scoring}
""";
string config = Path.Combine(work, "edgeinspector.yaml");
File.WriteAllText(config, yaml);
var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
foreach (string a in new[] { dll, "run", "--config", config }) psi.ArgumentList.Add(a);
using var service = Process.Start(psi)!;
service.OutputDataReceived += (_, _) => { };
service.ErrorDataReceived += (_, _) => { };
service.BeginOutputReadLine();
service.BeginErrorReadLine();

var verdicts = new ConcurrentQueue<(long Id, string Kind, double ServiceMs, double ArrivalMs, double At)>();
var clock = Stopwatch.StartNew();
using var client = new MqttClientFactory().CreateMqttClient();
client.ApplicationMessageReceivedAsync += e =>
{
    var j = JsonDocument.Parse(System.Buffers.BuffersExtensions.ToArray(e.ApplicationMessage.Payload)).RootElement;
    long id = j.GetProperty("frame_id").GetInt64();
    double arrival = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - j.GetProperty("timestamp_ms").GetInt64();
    verdicts.Enqueue((id, j.GetProperty("verdict").GetString()!, j.GetProperty("latency_ms").GetDouble(), arrival, clock.Elapsed.TotalSeconds));
    return Task.CompletedTask;
};
var connectUntil = Stopwatch.StartNew();
while (true)
{
    try
    {
        await client.ConnectAsync(new MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("linebench").Build());
        break;
    }
    catch (Exception) when (connectUntil.Elapsed < TimeSpan.FromSeconds(60) && !service.HasExited)
    {
        await Task.Delay(200);
    }
}
await client.SubscribeAsync("edgeinspector/bench/cam1/verdict", MQTTnet.Protocol.MqttQualityOfServiceLevel.AtLeastOnce);

var rss = new List<(long Frames, double Mb, double At)>();
int nextCheckpoint = 0;
long last = 0;
// The service's processor time once it scores (after the warm-up) and at the end: how much of the machine
// this rate takes, and so what is left of it.
(TimeSpan Cpu, double At)? scoringFrom = null, scoringTo = null;
Dictionary<string, double>? runtimeFrom = null, runtimeTo = null;
using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}/"), Timeout = TimeSpan.FromSeconds(10) };
while (last < opts.Frames && !service.HasExited)
{
    await Task.Delay(200);
    last = verdicts.IsEmpty ? 0 : verdicts.Max(v => v.Id);
    if (scoringFrom is null && verdicts.Any(v => v.Kind is "pass" or "fail" or "unsure"))
    {
        scoringFrom = ProcessorTime(service, clock);
        runtimeFrom = await Runtime(http);
    }
    while (nextCheckpoint < opts.Checkpoints.Length && last >= opts.Checkpoints[nextCheckpoint])
    {
        rss.Add((last, RssMb(service.Id), clock.Elapsed.TotalSeconds));
        Console.Error.WriteLine($"linebench: frame {last}: service RSS {rss[^1].Mb:0} MB");
        nextCheckpoint++;
    }
    if (clock.Elapsed.TotalSeconds % 30 < 0.2) Console.Error.WriteLine($"linebench: {last}/{opts.Frames} frames, {clock.Elapsed.TotalSeconds:0} s");
}
if (!service.HasExited)
{
    scoringTo = ProcessorTime(service, clock);
    runtimeTo = await Runtime(http);
}
var all = verdicts.Where(v => v.Id <= opts.Frames).ToList();
// A service that exited on its own is a finding, not a measurement: keep its logs and say so.
bool died = service.HasExited;
if (!died) service.Kill(entireProcessTree: true);
await service.WaitForExitAsync();
if (died) Console.Error.WriteLine($"linebench: the service exited by itself (code {service.ExitCode}) after frame {last}; its logs are kept in {work}/logs");
else try { Directory.Delete(work, true); } catch (IOException) { }

// Steady state: verdicts after the first scored one (warm-up excluded).
int firstScored = all.FindIndex(v => v.Kind is "pass" or "fail" or "unsure");
var steady = firstScored < 0 ? [] : all.Skip(firstScored).ToList();
var scored = steady.Where(v => v.Kind is "pass" or "fail" or "unsure").ToList();
double span = steady.Count > 1 ? steady[^1].At - steady[0].At : 0;
double PerSecond(int n) => span > 0 ? Math.Round(n / span, 2) : 0;
var result = new Dictionary<string, object?>
{
    ["category"] = opts.Category,
    ["scoring"] = opts.Scoring,
    ["tiles"] = $"{opts.TileCols}x{opts.TileRows}, overlap {opts.TileOverlap.ToString(CultureInfo.InvariantCulture)}",
    ["replay_fps"] = opts.Fps,
    ["frames"] = all.Count,
    ["verdicts"] = all.GroupBy(v => v.Kind).ToDictionary(g => g.Key, g => g.Count()),
    ["steady_frames"] = steady.Count,
    ["steady_seconds"] = Math.Round(span, 1),
    ["steady_verdicts_per_s"] = PerSecond(steady.Count),
    ["steady_scored_per_s"] = PerSecond(scored.Count),
    ["latency_service_ms"] = Pct(scored.Select(v => v.ServiceMs)),
    ["latency_arrival_ms"] = Pct(scored.Select(v => v.ArrivalMs)),
    ["latency_service_ms_all_kinds"] = Pct(steady.Select(v => v.ServiceMs)),
    // Every verdict from the first frame on, warm-up included: what the PLC sees over the whole run.
    ["latency_service_ms_whole_run"] = Pct(all.Select(v => v.ServiceMs)),
    // The longest time between two captures, in frame order (arrival time minus arrival latency): a stalled
    // capture loop shows here, where on a real camera it would cost frames.
    ["capture_gap_max_s"] = CaptureGapMax(all),
    // Of 100% per core: 200 is both cores of a 2-core machine busy.
    ["service_cpu_percent_scoring"] = scoringFrom is { } from && scoringTo is { } to && to.At > from.At ? Math.Round((to.Cpu - from.Cpu).TotalSeconds / (to.At - from.At) * 100, 1) : null,
    // From the service's /metrics at the first scored verdict and at the end: collections (GC.CollectionCount:
    // gen0 counts every one, gen2 the full, blocking ones), the time they held every thread, and the bytes
    // allocated, per second of that span.
    ["runtime_while_scoring"] = RuntimeRates(runtimeFrom, runtimeTo, scoringFrom, scoringTo),
    ["cores"] = Environment.ProcessorCount,
    ["rss_mb"] = rss.Select(r => new Dictionary<string, double> { ["frames"] = r.Frames, ["mb"] = Math.Round(r.Mb, 1) }).ToList(),
};
Directory.CreateDirectory(opts.Out);
string stem = Path.Combine(opts.Out, $"linebench-{opts.Fps.ToString(CultureInfo.InvariantCulture)}fps-{opts.Frames}");
var csv = new System.Text.StringBuilder("frame_id,verdict,latency_service_ms,latency_arrival_ms,arrived_s\n");
foreach (var v in all.OrderBy(v => v.Id)) csv.Append(CultureInfo.InvariantCulture, $"{v.Id},{v.Kind},{v.ServiceMs},{v.ArrivalMs},{v.At:0.000}\n");
File.WriteAllText(stem + "-latency.csv", csv.ToString());
double[] scoredMs = [.. scored.Select(v => v.ServiceMs)];
using (var histogram = EdgeInspector.Imaging.PlotRenderer.LatencyHistogram(scoredMs, EdgeInspector.Imaging.PlotRenderer.LatencyBinMs(scoredMs),
    $"{Path.GetFileName(opts.Category)}, {(opts.Fps > 0 ? $"{opts.Fps.ToString(CultureInfo.InvariantCulture)} fps" : "max rate")}: {scored.Count} scored frames after warm-up"))
{
    OpenCvSharp.Cv2.ImWrite(stem + "-latency.png", histogram);
}
result["latency_csv"] = stem + "-latency.csv";
result["latency_png"] = stem + "-latency.png";
string json = JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true });
File.WriteAllText(stem + ".json", json);
Console.WriteLine(json);
return 0;

static (TimeSpan Cpu, double At) ProcessorTime(Process service, Stopwatch clock)
{
    service.Refresh();
    return (service.TotalProcessorTime, clock.Elapsed.TotalSeconds);
}

static double CaptureGapMax(List<(long Id, string Kind, double ServiceMs, double ArrivalMs, double At)> all)
{
    var captured = all.OrderBy(v => v.Id).Select(v => v.At - v.ArrivalMs / 1000).ToArray();
    double max = 0;
    for (int i = 1; i < captured.Length; i++) max = Math.Max(max, captured[i] - captured[i - 1]);
    return Math.Round(max, 3);
}

static Dictionary<string, double> Pct(IEnumerable<double> xs)
{
    var a = xs.Order().ToArray();
    if (a.Length == 0) return [];
    double At(double q) => Math.Round(a[Math.Min(a.Length - 1, (int)Math.Ceiling(q * a.Length) - 1)], 1);
    return new() { ["p50"] = At(0.5), ["p95"] = At(0.95), ["p99"] = At(0.99), ["max"] = a[^1], ["n"] = a.Length };
}

static double RssMb(int pid)
{
    foreach (string line in File.ReadLines($"/proc/{pid}/status"))
    {
        if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }
    return double.NaN;
}

// The service's runtime figures from its /metrics (null when it cannot be read).
static async Task<Dictionary<string, double>?> Runtime(HttpClient http)
{
    try
    {
        var figures = new Dictionary<string, double>();
        foreach (string line in (await http.GetStringAsync("metrics")).Split('\n'))
        {
            int space = line.LastIndexOf(' ');
            if (line.StartsWith('#') || space < 0) continue;
            string name = line[..space];
            if (name.StartsWith("dotnet_collection_count_total", StringComparison.Ordinal) || name is "dotnet_gc_pause_seconds_total" or "dotnet_allocated_bytes_total")
                figures[name] = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
        }
        return figures;
    }
    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
    {
        Console.Error.WriteLine($"linebench: the service's /metrics could not be read: {e.Message}");
        return null;
    }
}

static Dictionary<string, double>? RuntimeRates(Dictionary<string, double>? from, Dictionary<string, double>? to, (TimeSpan Cpu, double At)? start, (TimeSpan Cpu, double At)? end)
{
    if (from is null || to is null || start is not { } s || end is not { } e || e.At <= s.At) return null;
    double Grew(string name) => to.GetValueOrDefault(name) - from.GetValueOrDefault(name);
    double seconds = e.At - s.At;
    return new()
    {
        ["seconds"] = Math.Round(seconds, 1),
        ["collections_gen0"] = Grew("dotnet_collection_count_total{generation=\"0\"}"),
        ["collections_gen1"] = Grew("dotnet_collection_count_total{generation=\"1\"}"),
        ["collections_gen2"] = Grew("dotnet_collection_count_total{generation=\"2\"}"),
        ["gc_pause_ms_per_s"] = Math.Round(Grew("dotnet_gc_pause_seconds_total") * 1000 / seconds, 2),
        ["allocated_mb_per_s"] = Math.Round(Grew("dotnet_allocated_bytes_total") / 1e6 / seconds, 2),
    };
}

static int FreePort()
{
    var l = new TcpListener(IPAddress.Loopback, 0);
    l.Start();
    int p = ((IPEndPoint)l.LocalEndpoint).Port;
    l.Stop();
    return p;
}

internal sealed record Args(long Frames, double Fps, string Category, string Model, string Out, long[] Checkpoints)
{
    public int TileCols { get; init; } = 1;
    public int TileRows { get; init; } = 1;
    public double TileOverlap { get; init; }
    public string Scoring { get; init; } = "auto";
    public string[]? Taps { get; init; }

    public const string Usage = "usage: edgeinspector-linebench [--frames N] [--fps F] [--category DIR] [--model FILE] [--taps a,b] [--out DIR] [--checkpoints 1000,10000] [--tiles CxR] [--tile-overlap F] [--scoring auto|managed|onnx]";

    public static string Repo()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "EdgeInspector.sln"))) return d.FullName;
        }
        throw new InvalidOperationException("run from inside the repository");
    }

    public static Args Parse(string[] a)
    {
        string repo = Repo();
        string shared = Path.GetFullPath(Path.Combine(repo, "..", "shared"));
        var r = new Args(1000, 0, Path.Combine(shared, "data", "mvtec_ad", "bottle"), Path.Combine(shared, "models", "resnet50v2_features.onnx"), Path.Combine(repo, "out", "linebench"), [1000, 10000]);
        // Every option takes a value: an odd count is a typo, not a run of the defaults.
        if (a.Length % 2 != 0) throw new ArgumentException($"'{a[^1]}' has no value");
        for (int i = 0; i + 1 < a.Length; i += 2)
        {
            r = a[i] switch
            {
                "--frames" => r with { Frames = long.Parse(a[i + 1], CultureInfo.InvariantCulture) },
                "--fps" => r with { Fps = double.Parse(a[i + 1], CultureInfo.InvariantCulture) },
                "--category" => r with { Category = Path.GetFullPath(a[i + 1]) },
                "--model" => r with { Model = Path.GetFullPath(a[i + 1]) },
                "--taps" => r with { Taps = a[i + 1].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) },
                "--out" => r with { Out = Path.GetFullPath(a[i + 1]) },
                "--checkpoints" => r with { Checkpoints = [.. a[i + 1].Split(',').Select(long.Parse)] },
                "--tiles" => r with { TileCols = int.Parse(a[i + 1].Split('x')[0], CultureInfo.InvariantCulture), TileRows = int.Parse(a[i + 1].Split('x')[1], CultureInfo.InvariantCulture) },
                "--tile-overlap" => r with { TileOverlap = double.Parse(a[i + 1], CultureInfo.InvariantCulture) },
                "--scoring" => r with { Scoring = a[i + 1] is "auto" or "managed" or "onnx" ? a[i + 1] : throw new ArgumentException($"--scoring: '{a[i + 1]}' is not auto, managed or onnx") },
                _ => throw new ArgumentException($"unknown option {a[i]}"),
            };
        }
        return r;
    }
}
