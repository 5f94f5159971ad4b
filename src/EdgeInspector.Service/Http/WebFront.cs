using System.Net;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EdgeInspector.Configuration;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serilog;

namespace EdgeInspector.Service;

/// <summary>
/// The HTTP side of the service (Kestrel in the same process): <c>/healthz</c>, <c>/readyz</c>,
/// <c>/metrics</c> and the operator's live view at <c>/</c>, with the archive behind it. It only reads
/// what the pipelines publish for other threads (status, live feed, archive index), so a slow browser
/// never slows a verdict. A port that cannot be bound is logged and the inspection goes on without HTTP:
/// the PLC's verdicts matter more than the page.
/// </summary>
internal sealed class WebFront(ConfigFile config, InspectionService inspection, ServiceMetrics metrics, ILogger<WebFront> log) : IHostedService
{
    /// <summary>How recently every stage must have reported for /healthz and /readyz (the watchdog's test).</summary>
    public static readonly TimeSpan MovingWithin = TimeSpan.FromSeconds(10);

    private WebApplication? _app;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var http = config.Settings.Http;
        if (http.Listen.Length == 0)
        {
            log.LogInformation("HTTP is off (http.listen is empty): no web view, /healthz, /readyz or /metrics");
            return;
        }
        var endpoint = IPEndPoint.Parse(http.Listen);
        string? token = ConfigLoader.Token(http);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true); // the host says it once
        builder.Services.AddSerilog();
        builder.WebHost.ConfigureKestrel(k => k.Listen(endpoint));
        var app = builder.Build();
        if (token is not null) app.Use((ctx, next) => Authorised(ctx, token) ? next(ctx) : Unauthorised(ctx));
        Map(app);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            log.LogError("HTTP could not listen on {Listen} (http.listen): {Error}; inspection goes on without the web view, /healthz, /readyz and /metrics", http.Listen, e.Message);
            await app.DisposeAsync();
            return;
        }
        _app = app;
        log.LogInformation("HTTP on http://{Listen}/ (live view, /healthz, /readyz, /metrics){Auth}", http.Listen, token is null ? "" : "; a bearer token is required");
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is null) return;
        await _app.StopAsync(cancellationToken);
        await _app.DisposeAsync();
    }

    private void Map(WebApplication app)
    {
        app.MapGet("/healthz", (HttpContext ctx) =>
        {
            bool alive = inspection.IsMoving(MovingWithin);
            return Json(ctx, alive ? 200 : 503, w => w.WriteString("status", alive ? "alive" : "stalled"));
        });
        app.MapGet("/readyz", Ready);
        app.MapGet("/metrics", async (HttpContext ctx) =>
        {
            metrics.Update(inspection.ConfigVersion, inspection.Pipelines.Select(p => p.Status()));
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await metrics.Registry.CollectAndExportAsTextAsync(ctx.Response.Body, ctx.RequestAborted);
        });
        app.MapGet("/", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/html; charset=utf-8";
            await using var page = Assembly.GetExecutingAssembly().GetManifestResourceStream("wwwroot/index.html")!;
            await page.CopyToAsync(ctx.Response.Body, ctx.RequestAborted);
        });
        app.MapGet("/api/cameras", () => Results.Bytes(Cameras(), "application/json"));
        app.MapGet("/events", Events);
        app.MapGet("/cameras/{camera}/latest.jpg", (HttpContext ctx, string camera) =>
        {
            if (Find(camera) is not { } p) return NoCamera(camera);
            if (p.Feed.Latest is not { } latest) return NotFound($"camera {camera} has shown no frame yet");
            ctx.Response.Headers.CacheControl = "no-store";
            return Results.Bytes(latest.Jpeg, "image/jpeg");
        });
        app.MapGet("/api/archive/{camera}", ArchiveList);
        app.MapGet("/archive/{camera}/{**file}", ArchiveFile);
    }

    /// <summary>A file of a camera's archive, as <c>/api/archive</c> names it (its stem and an extension).</summary>
    /// <remarks>A link to a record that has since been evicted says so, rather than a bare 404: the quality
    /// engineer who follows it from a report learns why it is gone.</remarks>
    private IResult ArchiveFile(string camera, string file)
    {
        if (Find(camera) is not { } p) return NoCamera(camera);
        string root = Path.GetFullPath(p.Archive.Root) + Path.DirectorySeparatorChar;
        string full = Path.GetFullPath(Path.Combine(root, file));
        // Only the archive's own files: no way out of its folder (the path asked for is not repeated).
        if (!full.StartsWith(root, StringComparison.Ordinal)) return NotFound($"not a file of camera {camera}'s archive");
        string? type = Path.GetExtension(full) switch { ".png" => "image/png", ".jpg" => "image/jpeg", ".json" => "application/json", _ => null };
        if (type is null) return NotFound("the archive serves its records' .json, .png and .jpg files only");
        if (!File.Exists(full))
        {
            return NotFound($"no '{file}' in camera {camera}'s archive: not written, or evicted since to stay within archive.max_files and archive.max_bytes (/api/archive/{camera} lists what is kept)");
        }
        return Results.File(full, type);
    }

    private IResult NoCamera(string camera) => NotFound($"no camera '{camera}'; cameras: {string.Join(", ", inspection.Pipelines.Select(x => x.Name))}");

    private static IResult NotFound(string why) => Results.Text(why + "\n", "text/plain", statusCode: 404);

    private CameraPipeline? Find(string camera) => inspection.Pipelines.FirstOrDefault(p => p.Name == camera);

    /// <summary>Ready: the model loaded, every pipeline moving, and every camera's broker connection up.</summary>
    private Task Ready(HttpContext ctx)
    {
        var checks = new List<(string Name, bool Ok, string Detail)>();
        checks.Add(("model", inspection.ModelLoaded, inspection.ModelLoaded ? "loaded and probed" : "not loaded"));
        var pipelines = inspection.Pipelines;
        if (pipelines.Count == 0) checks.Add(("pipelines", false, "no camera pipeline runs"));
        foreach (var p in pipelines)
        {
            var s = p.Status();
            bool moving = p.IsMoving(MovingWithin);
            checks.Add(($"{p.Name}.pipeline", moving, moving ? $"moving ({s.State})" : $"a stage has not reported within {MovingWithin.TotalSeconds:0} s ({s.State})"));
            // Spooled verdicts are kept, but reach the PLC only when the broker is back: not ready meanwhile.
            string broker = s.Delivery.Connected ? "connected"
                : $"not connected: verdicts are spooled for later delivery ({s.Queues.Spool} on disk, {s.Queues.Outgoing} in memory)";
            checks.Add(($"{p.Name}.broker", s.Delivery.Connected, broker));
        }
        bool ready = checks.All(c => c.Ok);
        return Json(ctx, ready ? 200 : 503, w =>
        {
            w.WriteBoolean("ready", ready);
            w.WriteStartArray("checks");
            foreach (var (name, ok, detail) in checks)
            {
                w.WriteStartObject();
                w.WriteString("name", name);
                w.WriteBoolean("ok", ok);
                w.WriteString("detail", detail);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });
    }

    /// <summary>Server-sent events: the cameras' state once a second while the page is open.</summary>
    private async Task Events(HttpContext ctx)
    {
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-store";
        var ct = ctx.RequestAborted;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await ctx.Response.WriteAsync("data: ", ct);
                await ctx.Response.Body.WriteAsync(Cameras(), ct);
                await ctx.Response.WriteAsync("\n\n", ct);
                await ctx.Response.Body.FlushAsync(ct);
                await Task.Delay(1000, ct);
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>{"line", "config_version", "cameras": [{"status", "recent": [verdicts, newest first], "latest_frame"}]}.</summary>
    private byte[] Cameras() => JsonObject(w =>
    {
        w.WriteString("line", config.Settings.Line);
        w.WriteNumber("config_version", inspection.ConfigVersion);
        w.WriteStartArray("cameras");
        foreach (var p in inspection.Pipelines)
        {
            w.WriteStartObject();
            w.WritePropertyName("status");
            w.WriteRawValue(JsonSerializer.SerializeToUtf8Bytes(p.Status(), WireJson.Default.StatusMessage));
            w.WriteStartArray("recent");
            foreach (var v in p.Feed.Recent()) w.WriteRawValue(JsonSerializer.SerializeToUtf8Bytes(v, WireJson.Default.VerdictMessage));
            w.WriteEndArray();
            if (p.Feed.Latest is { } latest) w.WriteNumber("latest_frame", latest.FrameId);
            else w.WriteNull("latest_frame");
            w.WriteEndObject();
        }
        w.WriteEndArray();
    });

    /// <summary>How many records the archive list gives when no <c>limit</c> is asked for, and at most.</summary>
    private const int ArchiveListDefault = 50, ArchiveListMax = 500;

    /// <summary>The newest archived records of a camera: [{"stem", "record"}], newest first.</summary>
    /// <remarks>The limit is read here rather than bound by the framework, whose refusal is a bare 400: a script's
    /// author is told what was wrong, as a technician is by the configuration check.</remarks>
    private IResult ArchiveList(string camera, string? limit)
    {
        if (Find(camera) is not { } p) return NoCamera(camera);
        int count = ArchiveListDefault;
        if (limit is not null && (!int.TryParse(limit, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out count) || count < 1 || count > ArchiveListMax))
        {
            return Results.Text($"limit: '{limit}' is not a whole number from 1 to {ArchiveListMax} (records, newest first; {ArchiveListDefault} when left out)\n", "text/plain", statusCode: 400);
        }
        return Results.Bytes(Utf8(w =>
        {
            w.WriteStartArray();
            foreach (string stem in p.Archive.Newest(count))
            {
                string json = Path.Combine(p.Archive.Root, stem + ".json");
                byte[] record;
                try { record = File.ReadAllBytes(json); }
                catch (IOException) { continue; } // evicted meanwhile
                w.WriteStartObject();
                w.WriteString("stem", stem.Replace(Path.DirectorySeparatorChar, '/'));
                w.WriteBoolean("heatmap", File.Exists(Path.Combine(p.Archive.Root, stem + "_heatmap.jpg")));
                w.WritePropertyName("record");
                w.WriteRawValue(record);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }), "application/json");
    }

    private static Task Json(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.Body.WriteAsync(JsonObject(body)).AsTask();
    }

    /// <summary>One JSON object, its members written by <paramref name="body"/>.</summary>
    private static byte[] JsonObject(Action<Utf8JsonWriter> body) => Utf8(w =>
    {
        w.WriteStartObject();
        body(w);
        w.WriteEndObject();
    });

    private static byte[] Utf8(Action<Utf8JsonWriter> write)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        return buffer.ToArray();
    }

    /// <summary>
    /// A bearer token in the Authorization header (Prometheus, scripts) or as <c>?token=</c> (the browser,
    /// whose page and event stream cannot set headers). <c>/healthz</c> says nothing and stays open for probes.
    /// </summary>
    private static bool Authorised(HttpContext ctx, string token)
    {
        if (ctx.Request.Path == "/healthz") return true;
        string? given = null;
        string header = ctx.Request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) given = header[7..].Trim();
        else if (ctx.Request.Query.TryGetValue("token", out var q)) given = q.ToString();
        return given is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(token));
    }

    private static Task Unauthorised(HttpContext ctx)
    {
        ctx.Response.StatusCode = 401;
        ctx.Response.Headers.WWWAuthenticate = "Bearer";
        return ctx.Response.WriteAsync("a bearer token is required (http.token_env / http.token_file): Authorization: Bearer <token>, or ?token=<token> in a browser\n");
    }
}
