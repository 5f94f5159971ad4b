using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeInspector.Integration.Tests;
using Xunit.Abstractions;
using static EdgeInspector.Service.Tests.ReplayFolders;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// The HTTP side end to end: the service as a process, a real mosquitto, real images, and the live view
/// in a real headless Chromium.
/// </summary>
public partial class WebTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    /// <summary>Where the live view's screenshot is written: beside the test assembly.</summary>
    public static string ScreenshotPath => Path.Combine(AppContext.BaseDirectory, "screenshots", "live-view.png");

    [Fact]
    public async Task The_live_view_shows_live_verdicts_the_heatmap_and_the_archived_fails_in_a_real_browser()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 14, defects: 6);
        int http = Ports.Free();
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        using var service = new ServiceRun(tmp.Path, Yaml.Config(Yaml.Replay(folder, fps: 4, loop: true), Yaml.Broker(broker.Port), tmp.Path, httpPort: http));
        // Scored verdicts and an archived fail exist before the page opens.
        await probe.WaitFor(p => p.On("/verdict").Any(m => m.Json.GetProperty("verdict").GetString() == "fail"), Long, "a fail", service.Process);

        await using var browser = await Browser.StartAsync(tmp.Path);
        await browser.Navigate($"http://127.0.0.1:{http}/");
        const string probeJs = """
            (() => {
              const cam = document.querySelector('#cam-cam1');
              if (!cam) return null;
              const img = cam.querySelector('img.frame');
              return {
                scored: cam.querySelectorAll('.verdict.v-pass, .verdict.v-fail, .verdict.v-unsure').length,
                first: cam.querySelector('.verdict')?.textContent ?? '',
                image: img.complete ? img.naturalWidth : 0,
                archived: cam.querySelectorAll('.archive a.v-fail, .archive a.v-unsure').length,
                conn: document.getElementById('conn').textContent,
                updates: window.eiUpdates, error: window.eiError ?? null,
              };
            })()
            """;
        JsonElement shown = default;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            var v = await browser.Evaluate(probeJs);
            if (v is not null)
            {
                shown = JsonDocument.Parse(v.ToJsonString()).RootElement;
                if (shown.GetProperty("scored").GetInt32() > 0 && shown.GetProperty("image").GetInt32() > 0 && shown.GetProperty("archived").GetInt32() > 0) break;
            }
            await Task.Delay(250);
        }
        Assert.True(shown.ValueKind == JsonValueKind.Object, $"the page never showed camera cam1\n{Probe.Tail(service.Process.Output)}");
        Assert.True(shown.GetProperty("scored").GetInt32() > 0, $"no scored verdict on the page: {shown}");
        Assert.True(shown.GetProperty("image").GetInt32() > 0, $"no heatmap image on the page: {shown}");
        Assert.True(shown.GetProperty("archived").GetInt32() > 0, $"no archived fail listed: {shown}");
        Assert.Equal("live", shown.GetProperty("conn").GetString());
        Assert.Equal(JsonValueKind.Null, shown.GetProperty("error").ValueKind);

        // The page is live: a verdict published after it was read appears without a reload.
        long newest = Ids(probe.On("/verdict")).Max();
        string first = shown.GetProperty("first").GetString()!;
        var later = Regex.Match(first, @"#(\d+)");
        Assert.True(later.Success, first);
        sw.Restart();
        long onPage = 0;
        while (sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            string text = (await browser.Evaluate("document.querySelector('#cam-cam1 .verdict').textContent"))!.GetValue<string>();
            onPage = long.Parse(Regex.Match(text, @"#(\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
            if (onPage > newest) break;
            await Task.Delay(250);
        }
        Assert.True(onPage > newest, $"the page still shows frame {onPage} ({await browser.Evaluate(probeJs)}); MQTT had frame {newest} before and {Ids(probe.On("/verdict")).Max()} now\n{Probe.Tail(service.Process.Output)}");

        // Opening an archived fail shows its frame, its heatmap and its record.
        await browser.Evaluate("document.querySelector('#cam-cam1 .archive a.v-fail, #cam-cam1 .archive a.v-unsure').click()");
        sw.Restart();
        string? record = null;
        while (sw.Elapsed < TimeSpan.FromSeconds(15))
        {
            record = (await browser.Evaluate("(() => { const r = document.querySelector('#cam-cam1 .record.open'); const imgs = r ? [...r.querySelectorAll('img')] : []; return r && imgs.length == 2 && imgs.every(i => i.complete && i.naturalWidth > 0) ? r.querySelector('pre').textContent : null; })()"))?.GetValue<string>();
            if (record is not null) break;
            await Task.Delay(250);
        }
        Assert.NotNull(record);
        var rec = JsonDocument.Parse(record!).RootElement;
        Assert.Contains(rec.GetProperty("verdict").GetString(), new[] { "fail", "unsure" });
        Assert.Equal(64, rec.GetProperty("model_hash").GetString()!.Length);
        // The record joins the PLC's log: the same run, frame and gate action as the verdict published for it.
        Assert.Equal("testline", rec.GetProperty("line").GetString());
        long archivedFrame = rec.GetProperty("frame_id").GetInt64();
        await probe.WaitFor(p => p.On("/verdict").Any(m => m.Json.GetProperty("frame_id").GetInt64() == archivedFrame), Long, $"the verdict of archived frame {archivedFrame}", service.Process);
        var published = probe.On("/verdict").First(m => m.Json.GetProperty("frame_id").GetInt64() == archivedFrame).Json;
        Assert.Equal(published.GetProperty("run_id").GetInt64(), rec.GetProperty("run_id").GetInt64());
        Assert.Equal(published.GetProperty("reject").GetBoolean(), rec.GetProperty("reject").GetBoolean());
        Assert.Equal(published.GetProperty("verdict").GetString(), rec.GetProperty("verdict").GetString());

        // The same list for scripts: a limit it cannot take and a camera it does not have are answered with what it expected.
        using (var web = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{http}/") })
        {
            var one = JsonDocument.Parse(await web.GetStringAsync("api/archive/cam1?limit=1")).RootElement;
            Assert.Equal(1, one.GetArrayLength());
            foreach (string bad in new[] { "abc", "0", "501", "-5" })
            {
                using var r = await web.GetAsync($"api/archive/cam1?limit={bad}");
                string body = await r.Content.ReadAsStringAsync();
                Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
                Assert.Contains($"limit: '{bad}' is not a whole number from 1 to 500", body);
            }
            using var none = await web.GetAsync("api/archive/cam9");
            Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
            Assert.Equal("no camera 'cam9'; cameras: cam1\n", await none.Content.ReadAsStringAsync());
            // And so are the files: a link to a record since evicted says what may have become of it.
            foreach (var (path, says) in new[]
            {
                ("archive/cam9/x.json", "no camera 'cam9'; cameras: cam1"),
                ("cameras/cam9/latest.jpg", "no camera 'cam9'; cameras: cam1"),
                ("archive/cam1/2000-01-01/000000000_00000001_fail.png", "no '2000-01-01/000000000_00000001_fail.png' in camera cam1's archive: not written, or evicted since"),
                ("archive/cam1/notes.txt", "the archive serves its records' .json, .png and .jpg files only"),
            })
            {
                using var r = await web.GetAsync(path);
                Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
                Assert.Contains(says, await r.Content.ReadAsStringAsync());
            }
            string stem = one[0].GetProperty("stem").GetString()!;
            using (var found = await web.GetAsync($"archive/cam1/{stem}.json"))
            {
                Assert.Equal(HttpStatusCode.OK, found.StatusCode);
            }
        }

        byte[] png = await browser.Screenshot();
        Directory.CreateDirectory(Path.GetDirectoryName(ScreenshotPath)!);
        await File.WriteAllBytesAsync(ScreenshotPath, png);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.True(png.Length > 20_000, $"a {png.Length}-byte screenshot is too small to show the page");
        output.WriteLine($"live view: {shown}; newest on the page {onPage}; screenshot {ScreenshotPath} ({png.Length:N0} bytes)");
    }

    [Fact]
    public async Task Metrics_parse_as_Prometheus_text_and_readiness_flips_while_the_broker_is_down()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        string folder = ReplayFolder(tmp.Path, good: 16, defects: 2);
        int http = Ports.Free();
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        string yaml = Yaml.Config(Yaml.Replay(folder, fps: 4, loop: true), Yaml.Broker(broker.Port), tmp.Path, httpPort: http)
            .Replace($"  listen: 127.0.0.1:{http}", $"  listen: 127.0.0.1:{http}\n  token_env: EI_TEST_HTTP_TOKEN");
        using var service = new ServiceRun(tmp.Path, yaml, new Dictionary<string, string> { ["EI_TEST_HTTP_TOKEN"] = "line-7-secret" });
        await probe.WaitFor(p => p.On("/verdict").Count >= 12, Long, "12 verdicts", service.Process);

        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{http}/"), Timeout = TimeSpan.FromSeconds(10) };
        // The token is asked for everywhere but /healthz.
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("metrics")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("readyz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("?token=line-7-secret")).StatusCode);
        var health = await client.GetAsync("healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Contains("alive", await health.Content.ReadAsStringAsync());
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "line-7-secret");

        int delivered = probe.On("/verdict").Count;
        var metrics = await client.GetAsync("metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.StartsWith("text/plain", metrics.Content.Headers.ContentType!.ToString());
        var samples = Exposition.Parse(await metrics.Content.ReadAsStringAsync());
        static double Verdicts(List<Exposition.Sample> samples) => samples.Where(s => s.Name == "edgeinspector_verdicts_total" && s.Labels["camera"] == "cam1").Sum(s => s.Value);
        double verdicts = Verdicts(samples);
        // Counted when handed to the link, so at least what the subscriber had before the scrape.
        Assert.True(verdicts >= delivered, $"edgeinspector_verdicts_total {verdicts} < {delivered} verdicts delivered before the scrape");
        // Every verdict is counted and its latency observed. A scrape is not a transaction: one that reads the
        // two families while a verdict is being published sees them a verdict apart, so the scrape is taken
        // again until it falls between two verdicts (the line runs at 4 fps).
        for (int tries = 0; tries < 20; tries++)
        {
            if (samples.Single(s => s.Name == "edgeinspector_latency_seconds_count").Value == Verdicts(samples)) break;
            await Task.Delay(50);
            samples = Exposition.Parse(await client.GetStringAsync("metrics"));
        }
        verdicts = Verdicts(samples);
        Assert.Equal(verdicts, samples.Single(s => s.Name == "edgeinspector_latency_seconds_count").Value);
        Assert.Equal(verdicts, samples.Single(s => s.Name == "edgeinspector_latency_seconds_bucket" && s.Labels["le"] == "+Inf").Value);
        Assert.Equal(1, samples.Single(s => s.Name == "edgeinspector_broker_connected").Value);
        Assert.Equal(1, samples.Single(s => s.Name == "edgeinspector_config_version").Value);
        Assert.InRange(samples.Single(s => s.Name == "edgeinspector_reservoir_frames").Value, 8, 64); // warm: at least the warm-up batch
        foreach (string name in (string[])["edgeinspector_queue_depth", "edgeinspector_spool_messages", "edgeinspector_frames_dropped_total", "edgeinspector_frames_timed_out_total",
            "edgeinspector_frames_per_second", "edgeinspector_engine_warm", "edgeinspector_ready", "edgeinspector_archive_skipped_total", "edgeinspector_archive_evicted_total"])
        {
            Assert.Contains(samples, s => s.Name == name);
        }
        // The process as the runtime sees it: a service with a model loaded holds more than 50 MB, has
        // allocated and used processor time, and its collections are counted by generation.
        Assert.InRange(samples.Single(s => s.Name == "process_working_set_bytes").Value, 50e6, 16e9);
        Assert.True(samples.Single(s => s.Name == "process_cpu_seconds_total").Value > 0);
        Assert.Equal(["0", "1", "2"], samples.Where(s => s.Name == "dotnet_collection_count_total").Select(s => s.Labels["generation"]).Order());
        double allocated = samples.Single(s => s.Name == "dotnet_allocated_bytes_total").Value;
        Assert.True(allocated > 1e6, $"dotnet_allocated_bytes_total {allocated}");
        Assert.InRange(samples.Single(s => s.Name == "dotnet_gc_pause_seconds_total").Value, 0, 60);

        var ready = await client.GetAsync("readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        broker.Kill();
        var sw = Stopwatch.StartNew();
        HttpResponseMessage down;
        while ((down = await client.GetAsync("readyz")).StatusCode == HttpStatusCode.OK && sw.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(200);
        double flipped = sw.Elapsed.TotalSeconds;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
        var body = JsonDocument.Parse(await down.Content.ReadAsStringAsync()).RootElement;
        Assert.False(body.GetProperty("ready").GetBoolean());
        var failing = body.GetProperty("checks").EnumerateArray().Where(c => !c.GetProperty("ok").GetBoolean()).ToList();
        var brokerCheck = Assert.Single(failing);
        Assert.Equal("cam1.broker", brokerCheck.GetProperty("name").GetString());
        Assert.Contains("spooled", brokerCheck.GetProperty("detail").GetString());
        // Liveness is not readiness: the service itself still moves.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("healthz")).StatusCode);
        var spooling = Exposition.Parse(await client.GetStringAsync("metrics"));
        Assert.Equal(0, spooling.Single(s => s.Name == "edgeinspector_broker_connected").Value);
        // Read at each scrape: the service went on allocating since the first one.
        Assert.True(spooling.Single(s => s.Name == "dotnet_allocated_bytes_total").Value > allocated);

        await broker.StartAsync();
        sw.Restart();
        while ((await client.GetAsync("readyz")).StatusCode != HttpStatusCode.OK && sw.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(200);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("readyz")).StatusCode);
        output.WriteLine($"{samples.Count} samples; verdicts_total {verdicts} ≥ {delivered} delivered; /readyz 503 {flipped:0.0} s after the broker was killed, 200 again {sw.Elapsed.TotalSeconds:0.0} s after it was back");
    }

    private static IEnumerable<long> Ids(List<Received> verdicts) => verdicts.Select(m => m.Json.GetProperty("frame_id").GetInt64());
}

/// <summary>A strict reader of the Prometheus text exposition format (version 0.0.4).</summary>
internal static partial class Exposition
{
    internal sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    [GeneratedRegex("""^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)( -?\d+)?$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?""")]
    private static partial Regex Label();

    [GeneratedRegex("""^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$""")]
    private static partial Regex Comment();

    /// <summary>Every sample; throws on a line that is not the format, or a sample of a family with no TYPE line.</summary>
    public static List<Sample> Parse(string text)
    {
        var types = new Dictionary<string, string>();
        var samples = new List<Sample>();
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0) continue;
            if (line.StartsWith('#'))
            {
                var c = Comment().Match(line);
                if (!c.Success) throw new FormatException($"not a HELP or TYPE line: {line}");
                if (c.Groups[1].Value == "TYPE")
                {
                    Assert.Contains(c.Groups[3].Value, new[] { "counter", "gauge", "histogram", "summary", "untyped" });
                    types[c.Groups[2].Value] = c.Groups[3].Value;
                }
                continue;
            }
            var m = SampleLine().Match(line);
            if (!m.Success) throw new FormatException($"not a sample line: {line}");
            string name = m.Groups[1].Value;
            var labels = new Dictionary<string, string>();
            string inner = m.Groups[3].Value;
            if (inner.Length > 0)
            {
                var all = Label().Matches(inner);
                if (string.Concat(all.Select(x => x.Value)) != inner) throw new FormatException($"bad labels: {line}");
                foreach (Match l in all) labels[l.Groups[1].Value] = l.Groups[2].Value;
            }
            double value = m.Groups[4].Value switch
            {
                "+Inf" => double.PositiveInfinity, "-Inf" => double.NegativeInfinity, "NaN" => double.NaN,
                var v => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture),
            };
            string family = Regex.Replace(name, "_(bucket|sum|count)$", "");
            if (!types.ContainsKey(name) && !types.ContainsKey(family)) throw new FormatException($"sample {name} has no # TYPE line");
            samples.Add(new Sample(name, labels, value));
        }
        return samples;
    }
}
