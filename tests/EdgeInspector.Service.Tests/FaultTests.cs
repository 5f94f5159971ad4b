using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Inference.Onnx;
using EdgeInspector.Imaging;
using EdgeInspector.Integration.Tests;
using EdgeInspector.Mqtt;
using Microsoft.Extensions.Logging;
using LogLevel = Microsoft.Extensions.Logging.LogLevel;
using OpenCvSharp;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// Faults injected into one camera pipeline's stages, in-process: real images through the real model,
/// with the link (the publisher seam) or the backbone replaced by one that fails on purpose. Each test
/// asserts the fault is logged with its exception and shown on the status within seconds, that no
/// failure publishes a pass, and that the counters balance: captured = answered + counted losses.
/// </summary>
public partial class FaultTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);
    private static readonly Lazy<SharedBackbone> Backbone = new(() => new SharedBackbone(new OnnxBackbone(SharedBackbone.OptionsFrom(Settings(Path.GetTempPath()).Model))));

    private static InspectorSettings Settings(string folder, string dir = "/tmp", double fps = 8, int deadlineMs = 20000) =>
        ConfigLoader.Parse(Yaml.Config(Yaml.Replay(folder, fps, loop: false), Yaml.Broker(1), dir).Replace("  batch: 8", "  batch: 4").Replace("deadline_ms: 20000", $"deadline_ms: {deadlineMs}"), "fault-test.yaml", dir);

    /// <summary>Bottle images in a replay folder, with extra files written by <paramref name="extra"/>.</summary>
    private static string Folder(string root, int good, Action<string>? extra = null)
    {
        string dir = Path.Combine(root, "replay");
        Directory.CreateDirectory(dir);
        int i = 0;
        foreach (string f in Directory.GetFiles(Path.Combine(Shared.Data("mvtec_ad/bottle"), "train", "good"), "*.png").Order().Take(good))
        {
            File.Copy(f, Path.Combine(dir, $"{i++:D3}_good.png"));
        }
        extra?.Invoke(dir);
        return dir;
    }

    private sealed class Run : IAsyncDisposable
    {
        public required CameraPipeline Pipeline { get; init; }
        public required FakeLink Link { get; init; }
        public required ListLogger Log { get; init; }
        public string? Fatal;

        /// <summary>Waits until every captured frame is accounted for (answered or counted lost).</summary>
        public async Task Settled(int frames)
        {
            var sw = Stopwatch.StartNew();
            while (Answered + Pipeline.Counters.VerdictsUnpublished < frames || Pipeline.Counters.Frames < frames)
            {
                if (sw.Elapsed > Long) Assert.Fail($"{Pipeline.Counters.Frames} captured, {Answered} answered, {Pipeline.Counters.VerdictsUnpublished} lost after {Long.TotalSeconds} s\n{string.Join("\n", Log.Lines)}");
                await Task.Delay(50);
            }
        }

        public long Answered => Pipeline.Counters.Answered;

        public ValueTask DisposeAsync() => Pipeline.DisposeAsync();
    }

    private static Run Start(string folder, FakeLink link, Func<SharedBackbone, EngineSettings, FrameInspector>? inspector = null, double fps = 8, int deadlineMs = 20000,
        Func<InspectorSettings, InspectorSettings>? edit = null)
    {
        // The spool, snapshot, logs and archive go to the test's own folder: no state carries from one test to the next.
        var s = Settings(folder, Path.GetDirectoryName(folder)!, fps, deadlineMs);
        if (edit is not null) s = edit(s);
        var cam = s.Cameras[0];
        var log = new ListLogger();
        var engine = inspector?.Invoke(Backbone.Value, s.Engine) ?? new FrameInspector(Backbone.Value, s.Engine);
        Run? run = null;
        var pipeline = new CameraPipeline(cam, new LiveSettings(s, 1), engine, (_, _) => new FolderReplaySource(cam.Replay.Folder, cam.Replay.Fps, false),
            handler => { link.Handler = handler; return link; }, new Topics("edgeinspector", "testline"), Backbone.Value.Model.ModelHash, new CameraState(1, cam.Recipe), log, reason => run!.Fatal = reason);
        run = new Run { Pipeline = pipeline, Link = link, Log = log };
        pipeline.Start(null);
        return run;
    }

    private static async Task<TimeSpan> Until(Func<bool> done, string what, Run run)
    {
        var sw = Stopwatch.StartNew();
        while (!done())
        {
            if (sw.Elapsed > Long) Assert.Fail($"timed out waiting for {what}\n{string.Join("\n", run.Log.Lines)}");
            await Task.Delay(20);
        }
        return sw.Elapsed;
    }

    [Fact]
    public async Task A_publisher_that_throws_loses_only_those_verdicts_counted_shown_and_logged_and_verdicts_resume()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 14);
        // The 4th to 6th verdicts handed to the link throw (as a full spool disk once did).
        int verdictCalls = 0;
        var link = new FakeLink { Throw = m => m.Topic.EndsWith("/verdict") && Interlocked.Increment(ref verdictCalls) is >= 4 and <= 6 };
        await using var run = Start(folder, link);
        var report = await Until(() => run.Pipeline.Counters.VerdictsUnpublished > 0, "the first lost verdict", run);
        // Shown at once: the status says degraded, naming the publish stage.
        run.Pipeline.StatusNow();
        var status = link.Status!.Value;
        Assert.Equal("degraded", status.GetProperty("state").GetString());
        Assert.Equal("degraded", run.Pipeline.Health.State);
        Assert.Contains("frame", status.GetProperty("stages").GetProperty("publish").GetProperty("last_error").GetString());
        Assert.True(status.GetProperty("stages").GetProperty("publish").GetProperty("faults").GetInt64() >= 1);
        Assert.Contains(run.Log.Entries, e => e.Level == LogLevel.Error && e.Exception is IOException && e.Message.Contains("lost"));

        await run.Settled(14);
        var verdicts = link.Verdicts();
        Assert.Equal(3, run.Pipeline.Counters.VerdictsUnpublished);
        Assert.Equal(11, verdicts.Count);
        // Frames 4–6 are the ones lost; everything after them was published, in order.
        Assert.Equal([1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14], verdicts.Select(v => v.GetProperty("frame_id").GetInt64()));
        // Captured = answered + counted losses.
        Assert.Equal(run.Pipeline.Counters.Frames, run.Answered + run.Pipeline.Counters.VerdictsUnpublished);
        run.Pipeline.StatusNow();
        var d = link.Status!.Value.GetProperty("delivery");
        Assert.Equal(3, d.GetProperty("verdicts_unpublished").GetInt64());
        Assert.True(report < TimeSpan.FromSeconds(30), $"reported after {report}");
        output.WriteLine($"throwing publisher: first loss counted {report.TotalSeconds:0.00} s after start; frames {run.Pipeline.Counters.Frames} = answered {run.Answered} + unpublished {run.Pipeline.Counters.VerdictsUnpublished}");
    }

    [Fact]
    public async Task A_link_loop_that_throws_is_logged_at_once_restarted_and_the_watchdog_waits_for_it()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 10);
        var link = new FakeLink { RunFailures = 2 };
        await using var run = Start(folder, link);
        var seen = await Until(() => run.Log.Entries.Any(e => e.Level == LogLevel.Critical), "the stage failure in the log", run);
        Assert.True(seen < TimeSpan.FromSeconds(5), $"logged after {seen}");
        var critical = run.Log.Entries.First(e => e.Level == LogLevel.Critical);
        Assert.IsType<InvalidOperationException>(critical.Exception);
        Assert.Contains("publish", critical.Message);
        // While the stage waits to restart, the status is not online and the watchdog gets no "moving".
        Assert.Equal("restarting", run.Pipeline.Health.Snapshot()["publish"].State);
        Assert.Equal("degraded", run.Pipeline.Health.State);
        Assert.False(run.Pipeline.IsMoving(TimeSpan.FromMinutes(1)));
        // Two failures, two restarts (1 s then 2 s back-off); then it runs and verdicts flow.
        await Until(() => link.RunStarts == 3, "the third start of the link loop", run);
        await Until(() => run.Pipeline.Health.AllRunning, "every stage running", run);
        Assert.True(run.Pipeline.IsMoving(TimeSpan.FromMinutes(1)));
        await run.Settled(10);
        Assert.Equal(10, link.Verdicts().Count);
        Assert.Null(run.Fatal);
        Assert.Equal(2, run.Log.Entries.Count(e => e.Level == LogLevel.Critical));
        output.WriteLine($"throwing link loop: logged critical {seen.TotalSeconds:0.00} s after start; restarted twice; frames {run.Pipeline.Counters.Frames} = answered {run.Answered} + unpublished {run.Pipeline.Counters.VerdictsUnpublished}");
    }

    [Fact]
    public async Task A_stage_that_keeps_failing_stops_the_service_for_its_supervisor()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 4);
        var link = new FakeLink { RunFailures = int.MaxValue };
        await using var run = Start(folder, link);
        // 5 failures within a minute (back-off 1 + 2 + 4 + 8 s): no more restarts, the service stops.
        var fatal = await Until(() => run.Fatal is not null, "the fatal call", run);
        output.WriteLine($"link loop failing for good: fatal after {fatal.TotalSeconds:0.0} s and {link.RunStarts} starts");
        Assert.Equal(StageHealth.MaxRestarts, link.RunStarts);
        Assert.Contains("publish", run.Fatal);
        Assert.Equal("failed", run.Pipeline.Health.State);
        Assert.False(run.Pipeline.IsMoving(TimeSpan.FromMinutes(1)));
        run.Pipeline.StatusNow();
        Assert.Equal("failed", link.Status!.Value.GetProperty("state").GetString());
    }

    [Fact]
    public async Task A_backbone_that_throws_answers_every_frame_error_and_never_a_pass()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 8);
        var link = new FakeLink();
        await using var run = Start(folder, link, (b, e) => new ThrowingInspector(b, e));
        var report = await Until(() => run.Pipeline.Health.State == "degraded", "the status to leave online", run);
        Assert.True(report < TimeSpan.FromSeconds(10), $"reported after {report}");
        await run.Settled(8);
        var verdicts = link.Verdicts();
        Assert.Equal(8, verdicts.Count);
        Assert.All(verdicts, v => Assert.Equal("error", v.GetProperty("verdict").GetString()));
        Assert.All(verdicts, v => Assert.True(v.GetProperty("reject").GetBoolean()));
        Assert.All(verdicts, v => Assert.Contains("injected", v.GetProperty("error").GetString()));
        Assert.Equal(run.Pipeline.Counters.Frames, run.Pipeline.Counters.Errors);
        run.Pipeline.StatusNow();
        var infer = link.Status!.Value.GetProperty("stages").GetProperty("infer");
        Assert.True(infer.GetProperty("faults").GetInt64() >= 1);
        Assert.Equal("running", infer.GetProperty("state").GetString()); // it survived the fault
        // A flood of identical failures is logged once per period, not once per batch.
        Assert.InRange(run.Log.Entries.Count(e => e.Level == LogLevel.Error && e.Message.Contains("backbone failed on frames")), 1, 2);
        output.WriteLine($"throwing backbone: degraded {report.TotalSeconds:0.00} s after start; frames {run.Pipeline.Counters.Frames} = errors {run.Pipeline.Counters.Errors}");
    }

    [Fact]
    public async Task A_frame_the_decoder_cannot_read_faithfully_is_answered_error_naming_its_format()
    {
        using var tmp = new TempFolder();
        string folder = Folder(tmp.Path, 6, dir =>
        {
            using (var f = new Mat(64, 64, MatType.CV_32FC1, new Scalar(0.5))) Cv2.ImWrite(Path.Combine(dir, "003_float.tiff"), f);
            using (var g = new Mat(64, 64, MatType.CV_16UC1, new Scalar(30000))) Cv2.ImWrite(Path.Combine(dir, "004_gray16.png"), g);
        });
        var link = new FakeLink();
        await using var run = Start(folder, link);
        await run.Settled(8);
        var verdicts = link.Verdicts().ToDictionary(v => v.GetProperty("part_id").GetString()!);
        var floatFrame = verdicts["003_float"];
        Assert.Equal("error", floatFrame.GetProperty("verdict").GetString());
        Assert.Contains("32-bit float", floatFrame.GetProperty("error").GetString());
        Assert.NotEqual("error", verdicts["004_gray16"].GetProperty("verdict").GetString());
        Assert.Equal(1, run.Pipeline.Counters.Errors);
        // A bad frame is bad input, not a fault of the service: the status stays online.
        Assert.Equal("online", run.Pipeline.Health.State);
    }

    [Fact]
    public async Task Every_message_on_the_command_topic_is_answered_and_a_refusal_echoes_nothing_large()
    {
        using var tmp = new TempFolder();
        var link = new FakeLink();
        await using var run = Start(Folder(tmp.Path, 2), link);
        const string topic = "edgeinspector/testline/cam1/command";
        string huge = "{\"id\":\"" + new string('x', 1024 * 1024) + "\",\"command\":\"reset_coreset\"}";
        var cases = new (string Payload, string Reason)[]
        {
            ("{\"id\":\"1\",\"command\":5}", "'command' must be a string, not a number"),
            ("[1,2]", "a JSON array is not a command"),
            ("null", "a JSON null is not a command"),
            ("{\"id\":\"4\",\"command\":\"switch_recipe\",\"recipe\":7}", "'recipe' must be a string, not a number"),
            ("reset please", "not JSON"),
            ("{\"id\":\"6\"}", "no 'command' field"),
            ("{\"id\":\"7\",\"command\":\"launch\"}", "unknown command 'launch'"),
            (huge, $"a command of {huge.Length} bytes is refused"),
        };
        foreach (var (payload, _) in cases) await link.Handler!(topic, Encoding.UTF8.GetBytes(payload));
        await link.Handler!(topic, Encoding.UTF8.GetBytes("{\"id\":42,\"command\":\"reset_coreset\"}"));
        await Until(() => link.Acks().Count == cases.Length + 1, "an acknowledgement for every command", run);
        var acks = link.Acks();
        for (int i = 0; i < cases.Length; i++)
        {
            Assert.False(acks[i].GetProperty("ok").GetBoolean());
            Assert.Contains(cases[i].Reason, acks[i].GetProperty("message").GetString());
        }
        Assert.Equal(["1", "", "", "4", "", "6", "7", ""], acks.Take(cases.Length).Select(a => a.GetProperty("id").GetString()));
        // The valid one is applied by the inference loop and acknowledged ok, with its numeric id as text.
        Assert.True(acks[^1].GetProperty("ok").GetBoolean());
        Assert.Equal("42", acks[^1].GetProperty("id").GetString());
        int largest = link.Sent.Where(m => m.Topic.EndsWith("/command/ack")).Max(m => m.Payload.Length);
        Assert.True(largest < 1024, $"an acknowledgement of {largest} bytes");
        // Refusals are logged, but not one line each.
        Assert.InRange(run.Log.Entries.Count(e => e.Message.Contains("refused")), 1, 2);
    }

    [Fact]
    public async Task A_flood_of_part_ids_no_frame_takes_is_counted_and_summarised_not_logged_line_by_line()
    {
        using var tmp = new TempFolder();
        var link = new FakeLink();
        await using var run = Start(Folder(tmp.Path, 1), link);
        for (int i = 0; i < 20_000; i++) await link.Handler!("edgeinspector/testline/cam1/part", Encoding.UTF8.GetBytes($"P-{i}"));
        // At most 1,000 wait for frames; the rest are discarded and counted. (The one replayed frame
        // carries its file name and takes none.)
        Assert.Equal(19_000, run.Pipeline.Counters.PartIdsDiscarded);
        Assert.InRange(run.Log.Entries.Count(e => e.Level == LogLevel.Warning && e.Message.Contains("part id")), 1, 2);
        run.Pipeline.StatusNow();
        Assert.Equal(19_000, link.Status!.Value.GetProperty("delivery").GetProperty("part_ids_discarded").GetInt64());
    }

    /// <summary>The backbone failing on every call (a GPU fault, a model that cannot run).</summary>
    private sealed class ThrowingInspector(SharedBackbone b, EngineSettings e) : FrameInspector(b, e)
    {
        public override FrameFeatures[]?[] Extract(IReadOnlyList<DecodedImage?> images, IReadOnlyList<TileGrid?> geometry) => throw new InvalidOperationException("injected: the execution provider failed");
    }
}

/// <summary>A link that records what it is given, and fails on purpose when told.</summary>
internal sealed class FakeLink : IMessageLink
{
    public readonly ConcurrentQueue<OutgoingMessage> Sent = new();
    /// <summary>Enqueue throws (an IOException, as a full disk does) for the messages this selects.</summary>
    public Func<OutgoingMessage, bool>? Throw;
    /// <summary>How many times RunAsync throws before it runs.</summary>
    public int RunFailures;
    /// <summary>The pipeline's handler for messages on its subscribed topics (commands, part ids).</summary>
    public Func<string, byte[], Task>? Handler;

    public List<JsonElement> Acks() => [.. Sent.Where(m => m.Topic.EndsWith("/command/ack")).Select(m => JsonDocument.Parse(m.Payload).RootElement)];
    private int _runStarts;
    private volatile byte[]? _status;
    private long _enqueued;

    public int RunStarts => Volatile.Read(ref _runStarts);

    public JsonElement? Status => _status is { } s ? JsonDocument.Parse(s).RootElement : null;

    public List<JsonElement> Verdicts() => [.. Sent.Where(m => m.Topic.EndsWith("/verdict")).Select(m => JsonDocument.Parse(m.Payload).RootElement)];

    /// <summary>The first heatmap published (JPEG), waiting up to <paramref name="limit"/>; fails the test if none comes.</summary>
    public async Task<byte[]> FirstHeatmap(TimeSpan limit)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < limit)
        {
            if (Sent.FirstOrDefault(m => m.Topic.EndsWith("/heatmap"))?.Payload is { } jpeg) return jpeg;
            await Task.Delay(50);
        }
        Assert.Fail($"no heatmap was published within {limit.TotalSeconds:0} s");
        return [];
    }

    public void Enqueue(OutgoingMessage message)
    {
        if (Throw?.Invoke(message) == true) throw new IOException("injected: No space left on device");
        Interlocked.Increment(ref _enqueued);
        Sent.Enqueue(message);
    }

    public bool TryEnqueueBestEffort(OutgoingMessage message)
    {
        Sent.Enqueue(message);
        return true;
    }

    public void SetStatus(byte[] payload) => _status = payload;

    public async Task RunAsync(CancellationToken ct)
    {
        if (Interlocked.Increment(ref _runStarts) <= RunFailures)
        {
            await Task.Delay(20, ct);
            throw new InvalidOperationException("injected: the delivery loop failed");
        }
        while (!ct.IsCancellationRequested && !_stop) await Task.Delay(20, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private volatile bool _stop;

    public void StopWhenIdle() => _stop = true;

    public LinkCounters Counters => new(Interlocked.Read(ref _enqueued), 0, Interlocked.Read(ref _enqueued), 0, 0, 0, 0, 0, 0, 0, true);

    public string? LastError => null;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>Keeps every log entry: level, message and exception.</summary>
internal sealed class ListLogger : ILogger
{
    public readonly record struct Entry(LogLevel Level, string Message, Exception? Exception);

    private readonly ConcurrentQueue<Entry> _entries = new();

    public IReadOnlyList<Entry> Entries => [.. _entries];

    public IEnumerable<string> Lines => _entries.Select(e => $"{e.Level}: {e.Message} {e.Exception?.Message}");

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        => _entries.Enqueue(new Entry(logLevel, formatter(state, exception), exception));
}
