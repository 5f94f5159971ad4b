using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// A real headless Chromium (Debian's <c>chromium</c>, installed by scripts/setup.sh), driven over the
/// DevTools protocol on loopback: navigate, evaluate JavaScript in the page, take a screenshot.
/// </summary>
internal sealed class Browser : IAsyncDisposable
{
    private readonly ChildProcess _process;
    private readonly string _profile;
    private readonly ClientWebSocket _socket = new();
    private int _id;

    private Browser(ChildProcess process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    public static async Task<Browser> StartAsync(string dir)
    {
        string profile = Path.Combine(dir, "chromium-profile");
        Directory.CreateDirectory(profile);
        // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        var p = new ChildProcess("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", $"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"]);
        var b = new Browser(p, profile);
        string portFile = Path.Combine(profile, "DevToolsActivePort");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!File.Exists(portFile) || File.ReadAllText(portFile).Split('\n')[0].Length == 0)
        {
            if (p.HasExited || sw.Elapsed > TimeSpan.FromSeconds(60)) throw new InvalidOperationException($"chromium did not start its DevTools endpoint:\n{p.Output}");
            await Task.Delay(100);
        }
        int port = int.Parse(File.ReadAllText(portFile).Split('\n')[0]);
        using var http = new HttpClient();
        var targets = await http.GetFromJsonAsync<JsonArray>($"http://127.0.0.1:{port}/json/list");
        string ws = targets!.First(t => (string?)t!["type"] == "page")!["webSocketDebuggerUrl"]!.GetValue<string>();
        await b._socket.ConnectAsync(new Uri(ws), CancellationToken.None);
        return b;
    }

    public string Output => _process.Output;

    /// <summary>Sends one DevTools command and returns its result (events in between are skipped).</summary>
    public async Task<JsonNode> Call(string method, object? parameters = null)
    {
        int id = Interlocked.Increment(ref _id);
        byte[] request = JsonSerializer.SerializeToUtf8Bytes(new { id, method, @params = parameters ?? new { } });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _socket.SendAsync(request, WebSocketMessageType.Text, true, timeout.Token);
        var buffer = new byte[1 << 16];
        while (true)
        {
            using var message = new MemoryStream();
            WebSocketReceiveResult r;
            do
            {
                r = await _socket.ReceiveAsync(buffer, timeout.Token);
                message.Write(buffer, 0, r.Count);
            }
            while (!r.EndOfMessage);
            var node = JsonNode.Parse(Encoding.UTF8.GetString(message.ToArray()))!;
            if ((int?)node["id"] != id) continue;
            if (node["error"] is { } error) throw new InvalidOperationException($"{method}: {error.ToJsonString()}");
            return node["result"]!;
        }
    }

    public Task Navigate(string url) => Call("Page.navigate", new { url });

    /// <summary>The value of a JavaScript expression in the page.</summary>
    public async Task<JsonNode?> Evaluate(string expression)
    {
        var r = await Call("Runtime.evaluate", new { expression, returnByValue = true });
        return r["result"]?["value"];
    }

    /// <summary>A PNG of the page as it is shown now.</summary>
    public async Task<byte[]> Screenshot() => Convert.FromBase64String((await Call("Page.captureScreenshot", new { format = "png" }))["data"]!.GetValue<string>());

    public async ValueTask DisposeAsync()
    {
        try { await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None); }
        catch (Exception e) when (e is WebSocketException or InvalidOperationException) { }
        _socket.Dispose();
        _process.Dispose();
    }
}
