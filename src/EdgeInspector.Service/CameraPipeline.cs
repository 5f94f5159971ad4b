using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Verdicts;
using EdgeInspector.Imaging;
using EdgeInspector.Mqtt;
using Microsoft.Extensions.Logging;
using OpenCvSharp;

namespace EdgeInspector.Service;

/// <summary>What the pipeline knows of a frame from the moment it is captured.</summary>
internal sealed record FrameMeta(long Id, string? PartId, DateTimeOffset CaptureUtc, long CaptureTimestamp);

/// <summary>A frame's result before it is published.</summary>
internal sealed class FrameOutcome
{
    public VerdictKind Kind;
    public float Score = float.NaN;
    public float Calibrated = float.NaN;
    /// <summary>Version of the coreset that scored it (null: none did, the reservoir alone).</summary>
    public long? CoresetVersion;
    /// <summary>Ids of the reservoir frames that scored it (null: the coreset scored it).</summary>
    public long[]? ReferenceFrames;
    /// <summary>For scored frames: the threshold and recipe the verdict was decided with (hot reload or a
    /// recipe switch may change them before it is published).</summary>
    public double? Threshold;
    public string? Recipe;
    public byte[]? Heatmap;
    public string? Error;
}

/// <summary>
/// One camera's pipeline: acquire → (bounded queue, drop policy) → decode + backbone + engine + decide →
/// sequence (in order, deadlines) → publish. Each stage is a loop on its own task; bounded channels sit
/// between them. Every frame that is captured gets exactly one verdict: scored, warming_up, dropped,
/// error or timeout. Settings that apply at once (verdict policy, heatmaps, archive) are read from
/// <see cref="Live"/> per frame; anything else is changed by replacing the pipeline.
/// </summary>
/// <remarks>
/// No stage dies quietly. A loop that throws is logged at once with its exception, shown on the status
/// topic (<c>degraded</c>, with the stage) and restarted; the sequencer keeps its state in fields, so
/// the frames it was waiting on are still answered. A stage that fails <see cref="StageHealth.MaxRestarts"/>
/// times within a minute is not restarted: <c>onFatal</c> takes the service down for systemd to restart.
/// Captured frames always balance: <see cref="Frames"/> = the verdicts handed to the link (by kind)
/// + <see cref="VerdictsUnpublished"/> + the frames still in flight.
/// </remarks>
internal sealed class CameraPipeline : IAsyncDisposable
{
    private sealed record Work(FrameMeta Meta, CapturedFrame Frame);
    private abstract record SeqEvent;
    private sealed record Registered(FrameMeta Meta, long Deadline) : SeqEvent;
    private sealed record Completed(long Id, FrameOutcome Outcome) : SeqEvent;

    private readonly CameraSettings _camera;
    private readonly Func<IFrameSource> _sourceFactory;
    private readonly FrameInspector _inspector;
    private readonly ILogger _log;
    private readonly IMessageLink _link;
    private readonly StageHealth _health = new(Stages.All);
    private readonly Action<string> _onFatal;
    // Warnings that can repeat once per frame or message are let through once per period, with a count.
    private readonly LogThrottle _publishFaultLog = new(TimeSpan.FromSeconds(10)), _engineFaultLog = new(TimeSpan.FromSeconds(10)),
        _badFrameLog = new(TimeSpan.FromSeconds(10)), _lateLog = new(TimeSpan.FromSeconds(10));
    private readonly Topics _topics;
    private readonly string _modelHash;
    private readonly Archive _archive;
    private readonly Channel<Work> _work;
    private readonly Channel<SeqEvent> _events = Channel.CreateUnbounded<SeqEvent>();
    private readonly ConcurrentQueue<(string Id, string Command, string? Recipe)> _commands = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _stopAcquire = new();
    private volatile int _sequencerPending;
    private readonly List<Task> _loops = [];
    private readonly LatencyWindow _latency = new(1024);
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly CameraState _state;
    private long _acquireBeat, _inferBeat, _sequenceBeat;

    public readonly SourceCounters SourceCounters = new();
    /// <summary>Frames captured; and verdicts handed to the link, by kind (counted when published, so each frame once).</summary>
    public long Frames, Dropped, Errors, Timeouts, LateResults, WarmingUp, Passed, Failed, Unsure;
    /// <summary>Verdicts decided but not handed to the link because it threw: lost, and counted.</summary>
    public long VerdictsUnpublished;
    public string? LastError;

    /// <summary>The pipeline's stage loops, as named on the status topic.</summary>
    internal static class Stages
    {
        public const string Acquire = "acquire", Infer = "infer", Sequence = "sequence", Publish = "publish", Status = "status", Archive = "archive";
        public static readonly string[] All = [Acquire, Infer, Sequence, Publish, Status, Archive];
    }

    /// <param name="linkFactory">Makes the camera's link, given the handler for the messages it receives.</param>
    /// <param name="onFatal">Called once when a stage has failed too often to be restarted.</param>
    public CameraPipeline(CameraSettings camera, LiveSettings live, FrameInspector inspector, Func<SourceCounters, IFrameSource> sourceFactory,
        Func<Func<string, byte[], Task>, IMessageLink> linkFactory, Topics topics, string modelHash, CameraState state, ILogger log, Action<string> onFatal)
    {
        _onFatal = onFatal;
        _state = state;
        _camera = camera;
        _live = live;
        _inspector = inspector;
        _sourceFactory = () => sourceFactory(SourceCounters);
        _log = log;
        _topics = topics;
        _modelHash = modelHash;
        var engine = live.Settings.Engine;
        _work = Channel.CreateBounded<Work>(new BoundedChannelOptions(engine.QueueCapacity) { SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        _link = linkFactory(OnMessageAsync);
        _archive = new Archive(() => Live.Settings.Archive, camera.Name, modelHash, log);
        Beat(ref _acquireBeat);
        Beat(ref _inferBeat);
        Beat(ref _sequenceBeat);
    }

    private LiveSettings _live;

    /// <summary>Settings that apply without a restart; swapped by hot reload.</summary>
    public LiveSettings Live
    {
        get => Volatile.Read(ref _live);
        set => Volatile.Write(ref _live, value);
    }

    public string Name => _camera.Name;

    public CameraSettings Camera => _camera;

    private static void Beat(ref long beat) => Volatile.Write(ref beat, Stopwatch.GetTimestamp());

    /// <summary>
    /// True when every stage loop runs and has reported within <paramref name="maxAge"/>: the watchdog's
    /// test. A stage that threw is not moving until it runs again.
    /// </summary>
    public bool IsMoving(TimeSpan maxAge)
    {
        if (!_health.AllRunning) return false;
        long now = Stopwatch.GetTimestamp(), limit = (long)(maxAge.TotalSeconds * Stopwatch.Frequency);
        return now - Volatile.Read(ref _acquireBeat) < limit && now - Volatile.Read(ref _inferBeat) < limit && now - Volatile.Read(ref _sequenceBeat) < limit;
    }

    /// <summary>The stages' health, as the status topic shows it.</summary>
    internal StageHealth Health => _health;

    public void Start(string? seedFolder)
    {
        var ct = _stop.Token;
        // The link loop is awaited on its own at shutdown (it drains last): it stays first in the list.
        _loops.Add(Supervise(Stages.Publish, _link.RunAsync, ct));
        string? seed = seedFolder;
        _loops.Add(Supervise(Stages.Infer, c =>
        {
            string? once = Interlocked.Exchange(ref seed, null); // seeded on the first start only
            return Task.Factory.StartNew(() => InferLoop(once, c), c, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }, ct));
        _loops.Add(Supervise(Stages.Sequence, SequenceLoop, ct));
        var acquireCt = CancellationTokenSource.CreateLinkedTokenSource(ct, _stopAcquire.Token).Token;
        _loops.Add(Supervise(Stages.Acquire, AcquireLoop, acquireCt));
        _loops.Add(Supervise(Stages.Status, StatusLoop, ct));
        _loops.Add(Supervise(Stages.Archive, _archive.RunAsync, ct));
    }

    /// <summary>
    /// Runs a stage's loop; when it throws, logs it at once, shows it on the status topic and starts it
    /// again after a back-off (1, 2, 4 … 10 s), until it fails too often: then <c>onFatal</c>.
    /// </summary>
    private Task Supervise(string stage, Func<CancellationToken, Task> loop, CancellationToken ct) => Task.Run(async () =>
    {
        var delay = TimeSpan.FromSeconds(1);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await loop(ct);
                return;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                bool restart = _health.LoopFailed(stage, e);
                LastError = $"{stage}: {e.Message}";
                if (!restart)
                {
                    _log.LogCritical(e, "Camera {Camera}: the {Stage} stage failed {Count} times within {Window} s and is not restarted again; stopping the service so that its supervisor restarts it", Name, stage, StageHealth.MaxRestarts, StageHealth.Window.TotalSeconds);
                    TryStatusNow();
                    _onFatal($"camera {Name}: the {stage} stage keeps failing: {e.Message}");
                    return;
                }
                _log.LogCritical(e, "Camera {Camera}: the {Stage} stage failed: {Error}; restarting it in {Delay:0} s", Name, stage, e.Message, delay.TotalSeconds);
                TryStatusNow();
            }
            try { await Task.Delay(delay, ct); }
            catch (OperationCanceledException) { return; }
            delay = TimeSpan.FromSeconds(Math.Min(delay.TotalSeconds * 2, 10));
            _health.Running(stage);
            _log.LogWarning("Camera {Camera}: the {Stage} stage restarted", Name, stage);
        }
    }, CancellationToken.None);

    // ---------------------------------------------------------------- acquire

    private async Task AcquireLoop(CancellationToken ct)
    {
        double maxBackoff = _camera.Source switch { "gige" => _camera.Gige.ReconnectMaxS, "video" => _camera.Video.ReconnectMaxS, _ => 10 };
        var backoff = TimeSpan.FromMilliseconds(250);
        bool everOpened = false;
        while (!ct.IsCancellationRequested)
        {
            Beat(ref _acquireBeat);
            IFrameSource source = _sourceFactory();
            try
            {
                await source.OpenAsync(ct);
                if (everOpened) Interlocked.Increment(ref SourceCounters.Reconnects);
                everOpened = true;
                _log.LogInformation("Camera {Camera}: {Source} open", Name, source.Description);
                backoff = TimeSpan.FromMilliseconds(250);
                while (!ct.IsCancellationRequested)
                {
                    Beat(ref _acquireBeat);
                    // An unpaced replay waits for room before it "captures": the pipeline sets the pace.
                    if (!source.IsRealTime) await _work.Writer.WaitToWriteAsync(ct);
                    var readTask = source.ReadAsync(ct).AsTask();
                    // Keep the heartbeat alive while a camera legitimately waits for its trigger.
                    while (!readTask.IsCompleted)
                    {
                        await Task.WhenAny(readTask, Task.Delay(500, ct));
                        Beat(ref _acquireBeat);
                    }
                    var frame = await readTask;
                    if (frame is null)
                    {
                        _log.LogInformation("Camera {Camera}: source finished", Name);
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    Admit(frame!);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LastError = $"camera: {e.Message}";
                _log.LogWarning("Camera {Camera}: {Error}; reconnecting in {Delay:0.0} s", Name, e.Message, backoff.TotalSeconds);
            }
            finally
            {
                await source.DisposeAsync();
            }
            try { await Task.Delay(backoff, ct); }
            catch (OperationCanceledException) { break; }
            backoff = TimeSpan.FromSeconds(Math.Min(backoff.TotalSeconds * 2, maxBackoff));
        }
    }

    private void Admit(CapturedFrame frame)
    {
        // The source's own part id (replay: the file) wins; otherwise the next one the line announced.
        string? part = frame.PartId ?? (_partIds.TryDequeue(out string? announced) ? announced : null);
        var meta = new FrameMeta(_state.Next(), part, frame.CaptureUtc, frame.CaptureTimestamp);
        Interlocked.Increment(ref Frames);
        long deadline = frame.CaptureTimestamp + (long)(Live.Settings.Verdict.DeadlineMs / 1000.0 * Stopwatch.Frequency);
        // Registered before it can be worked on: the sequencer always learns of a frame before its result.
        _events.Writer.TryWrite(new Registered(meta, deadline));
        var work = new Work(meta, frame);
        if (_work.Writer.TryWrite(work)) return;
        if (Live.Settings.Engine.DropPolicy == "drop_newest")
        {
            Drop(work);
            return;
        }
        // drop_oldest: the frame that waited longest is the least likely to make its deadline. (The
        // acquire loop reads from the queue here too: the channel is not single-reader for that reason.)
        if (_work.Reader.TryRead(out var oldest)) Drop(oldest);
        if (!_work.Writer.TryWrite(work)) Drop(work);
    }

    private void Drop(Work w)
    {
        w.Frame.Dispose();
        _events.Writer.TryWrite(new Completed(w.Meta.Id, new FrameOutcome { Kind = VerdictKind.Dropped, Error = "queue full: the backbone could not keep up" }));
    }

    // ---------------------------------------------------------------- infer

    private void InferLoop(string? seedFolder, CancellationToken ct)
    {
        if (!string.IsNullOrEmpty(seedFolder)) Seed(seedFolder);
        var batch = new List<Work>();
        var images = new List<Mat?>();
        var errors = new List<string?>();
        while (!ct.IsCancellationRequested)
        {
            Beat(ref _inferBeat);
            PollBuild();
            if (_build is null) ApplyCommands();
            batch.Clear();
            try
            {
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wait.CancelAfter(500);
                if (!_work.Reader.WaitToReadAsync(wait.Token).AsTask().GetAwaiter().GetResult()) break;
            }
            catch (OperationCanceledException)
            {
                continue;
            }
            int max = Live.Settings.Engine.InferenceBatch;
            while (batch.Count < max && _work.Reader.TryRead(out var w)) batch.Add(w);
            if (batch.Count == 0) continue;
            images.Clear();
            errors.Clear();
            foreach (var w in batch)
            {
                try
                {
                    images.Add(FrameDecoder.Decode(w.Frame));
                    errors.Add(null);
                }
                catch (Exception e) when (e is ImageDecodeException or OpenCVException)
                {
                    images.Add(null);
                    errors.Add(e.Message);
                }
                finally
                {
                    w.Frame.Dispose();
                }
            }
            try
            {
                FrameFeatures?[] features;
                try
                {
                    features = _inspector.Extract(images);
                }
                catch (Exception e)
                {
                    LastError = $"backbone: {e.Message}";
                    _health.Report(Stages.Infer, LastError);
                    if (_engineFaultLog.Allow(out long held)) _log.LogError(e, "Camera {Camera}: backbone failed on frames {First}..{Last} ({Held} similar failure(s) not logged since the last)", Name, batch[0].Meta.Id, batch[^1].Meta.Id, held);
                    foreach (var w in batch) Complete(w.Meta.Id, new FrameOutcome { Kind = VerdictKind.Error, Error = "backbone failed: " + e.Message });
                    continue;
                }
                for (int i = 0; i < batch.Count; i++)
                {
                    var meta = batch[i].Meta;
                    if (features[i] is not { } f)
                    {
                        LastError = errors[i];
                        if (_badFrameLog.Allow(out long held)) _log.LogWarning("Camera {Camera}: frame {Frame} ({Part}) cannot be processed: {Error} ({Held} such frame(s) not logged since the last; each is answered 'error')", Name, meta.Id, meta.PartId, errors[i], held);
                        Complete(meta.Id, new FrameOutcome { Kind = VerdictKind.Error, Error = errors[i] });
                        continue;
                    }
                    Complete(meta.Id, Score(meta, f, images[i]!));
                }
            }
            finally
            {
                foreach (var m in images) m?.Dispose();
            }
        }
    }

    private void Seed(string folder)
    {
        try
        {
            var sw = Stopwatch.StartNew();
            int n = _inspector.SeedKnownGood(folder);
            _log.LogInformation("Camera {Camera}: coreset seeded from {Count} known-good image(s) in {Folder} ({Ms:0} ms): scoring from the first frame", Name, n, folder, sw.Elapsed.TotalMilliseconds);
        }
        catch (Exception e)
        {
            LastError = $"known-good seeding: {e.Message}";
            _log.LogError(e, "Camera {Camera}: seeding from {Folder} failed; starting zero-shot", Name, folder);
        }
    }

    // The push that completes the warm-up batch builds the first coreset and scores the whole batch:
    // seconds on a small CPU. It runs off the loop so that frames keep being answered on time meanwhile
    // ("warming_up": the coreset does not exist yet); their features wait and are pushed, in order,
    // once the build is done, so they still teach the engine and their scores reach the log.
    private Task<IReadOnlyList<Core.Scoring.StreamResult>>? _build;
    private readonly List<(long Id, FrameFeatures Features)> _deferred = [];

    private void PollBuild()
    {
        if (_build is not { IsCompleted: true } build) return;
        _build = null;
        var engine = _inspector.Engine;
        if (build.IsFaulted)
        {
            LastError = $"engine: warm-up build failed: {build.Exception!.GetBaseException().Message}";
            _log.LogError(build.Exception, "Camera {Camera}: warm-up build failed; starting over", Name);
            engine.Reset();
            foreach (var (_, f) in _deferred) _inspector.Release(f);
            _deferred.Clear();
            return;
        }
        int scored = build.Result.Count, flagged = 0;
        var policy = Current().Policy;
        foreach (var r in build.Result) if (policy.Decide(r.Calibrated).IsFlagged()) flagged++;
        foreach (var (id, f) in _deferred)
        {
            foreach (var r in engine.Push(f, id))
            {
                scored++;
                if (policy.Decide(r.Calibrated).IsFlagged()) flagged++;
            }
        }
        _deferred.Clear();
        // Frames answered warming_up are scored once the engine is warm: logged for the audit trail.
        _log.LogInformation("Camera {Camera}: engine warm (reservoir {Frames} frames, coreset {Size} elements); scoring every frame from now on. {Scored} frame(s) answered warming_up were scored afterwards, {Flagged} of them would have failed", Name, engine.Reservoir?.Count ?? 0, engine.Coreset.Count, scored, flagged);
    }

    private FrameOutcome Score(FrameMeta meta, FrameFeatures f, Mat image)
    {
        var engine = _inspector.Engine;
        try
        {
            if (_build is not null)
            {
                _deferred.Add((meta.Id, f));
                return new FrameOutcome { Kind = VerdictKind.WarmingUp };
            }
            if (!engine.IsWarm && engine.WarmupBuffered + 1 >= Math.Max(2, Live.Settings.Engine.Batch))
            {
                _build = Task.Run(() => engine.Push(f, meta.Id));
                return new FrameOutcome { Kind = VerdictKind.WarmingUp };
            }
            var results = engine.Push(f, meta.Id);
            Core.Scoring.StreamResult? mine = null;
            foreach (var r in results)
            {
                if (r.FrameId == meta.Id) mine = r;
            }
            // Scored, but with no calibration yet (a single known-good image): not a verdict to act on.
            if (mine is null || !engine.IsCalibrated)
            {
                return new FrameOutcome { Kind = VerdictKind.WarmingUp };
            }
            var (policy, recipe) = Current();
            var kind = policy.Decide(mine.Calibrated);
            var outcome = new FrameOutcome { Kind = kind, Score = mine.Image, Calibrated = mine.Calibrated, CoresetVersion = mine.CoresetVersion > 0 ? mine.CoresetVersion : null, ReferenceFrames = mine.ReferenceFrames, Threshold = policy.Threshold, Recipe = recipe };
            var settings = Live.Settings;
            bool archive = InspectorSettings.Selects(settings.Archive.Save, kind.IsFlagged());
            if (archive || InspectorSettings.Selects(settings.Heatmap.Publish, kind.IsFlagged()))
            {
                outcome.Heatmap = RenderHeatmap(image, mine.Patches, meta, kind, mine.Calibrated, policy.Threshold, settings.Heatmap.JpegQuality);
            }
            if (archive) _archive.Enqueue(meta, image, outcome);
            return outcome;
        }
        catch (Exception e)
        {
            LastError = $"engine: {e.Message}";
            _health.Report(Stages.Infer, LastError);
            if (_engineFaultLog.Allow(out long held)) _log.LogError(e, "Camera {Camera}: scoring frame {Frame} failed ({Held} similar failure(s) not logged since the last)", Name, meta.Id, held);
            return new FrameOutcome { Kind = VerdictKind.Error, Error = "scoring failed: " + e.Message };
        }
    }

    /// <summary>
    /// The policy in force and the recipe it comes from, read together (a recipe's threshold overrides
    /// verdict.threshold; both can change by hot reload or command while frames are in flight).
    /// </summary>
    private (VerdictPolicy Policy, string Recipe) Current()
    {
        string recipe = _state.Recipe;
        var live = Live;
        var policy = live.Settings.Recipe(recipe)?.Threshold is { } t ? live.Policy with { Threshold = t } : live.Policy;
        return (policy, recipe);
    }

    private byte[] RenderHeatmap(Mat image, float[] patches, FrameMeta meta, VerdictKind kind, float calibrated, double threshold, int quality)
    {
        // One colour scale for every frame: blue at a typical good part, red at the threshold and above.
        float low = _inspector.Engine.RawScoreAt(0), high = _inspector.Engine.RawScoreAt((float)threshold);
        if (!float.IsFinite(low) || !float.IsFinite(high) || high <= low) (low, high) = (patches.Min(), patches.Max());
        using var small = Shrink(image, 512);
        string caption = $"{Name} #{meta.Id} {VerdictNames.Wire(kind)} z={calibrated.ToString("0.00", CultureInfo.InvariantCulture)}";
        using var overlay = HeatmapRenderer.Overlay(small, patches, _inspector.GridWidth, _inspector.GridHeight, low, high, caption: caption);
        Cv2.ImEncode(".jpg", overlay, out byte[] jpeg, new ImageEncodingParam(ImwriteFlags.JpegQuality, quality));
        return jpeg;
    }

    private static Mat Shrink(Mat image, int longSide)
    {
        int l = Math.Max(image.Width, image.Height);
        if (l <= longSide) return image.Clone();
        var m = new Mat();
        Cv2.Resize(image, m, new Size(image.Width * longSide / l, image.Height * longSide / l), 0, 0, InterpolationFlags.Area);
        return m;
    }

    private void Complete(long id, FrameOutcome outcome) => _events.Writer.TryWrite(new Completed(id, outcome));

    // ---------------------------------------------------------------- sequence + publish

    // The sequencer's state outlives its loop: a restarted loop still answers every frame registered before.
    private readonly VerdictSequencer<FrameOutcome> _sequencer = new();
    private readonly Dictionary<long, FrameMeta> _metas = [];
    private readonly List<(long, FrameOutcome?)> _released = [];

    private async Task SequenceLoop(CancellationToken ct)
    {
        var sequencer = _sequencer;
        var metas = _metas;
        var released = _released;
        // A frame released but not yet published when the loop failed is published first.
        PublishReleased(released, metas);
        while (!ct.IsCancellationRequested)
        {
            Beat(ref _sequenceBeat);
            long now = Stopwatch.GetTimestamp();
            long next = sequencer.NextDeadline ?? now + Stopwatch.Frequency / 2;
            var wait = TimeSpan.FromSeconds(Math.Clamp((next - now) / (double)Stopwatch.Frequency, 0.001, 0.5));
            using (var cts = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                cts.CancelAfter(wait);
                try { await _events.Reader.WaitToReadAsync(cts.Token); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
            }
            while (_events.Reader.TryRead(out var e))
            {
                switch (e)
                {
                    case Registered r:
                        metas[r.Meta.Id] = r.Meta;
                        sequencer.Register(r.Meta.Id, r.Deadline);
                        break;
                    case Completed c when !sequencer.Complete(c.Id, c.Outcome):
                        Interlocked.Increment(ref LateResults);
                        if (_lateLog.Allow(out long heldLate)) _log.LogWarning("Camera {Camera}: late result for frame {Frame}: {Verdict} (score {Score:0.00}); the frame was already answered 'timeout' ({Held} late result(s) not logged since the last)", Name, c.Id, VerdictNames.Wire(c.Outcome.Kind), c.Outcome.Calibrated, heldLate);
                        break;
                }
            }
            sequencer.Drain(Stopwatch.GetTimestamp(), released);
            _sequencerPending = sequencer.Pending;
            PublishReleased(released, metas);
        }
    }

    private void PublishReleased(List<(long Id, FrameOutcome? Outcome)> released, Dictionary<long, FrameMeta> metas)
    {
        // Taken off the list one at a time: a throw leaves only the frames not yet published on it.
        while (released.Count > 0)
        {
            var (id, outcome) = released[0];
            released.RemoveAt(0);
            if (!metas.Remove(id, out var meta)) continue;
            Publish(meta, outcome ?? new FrameOutcome { Kind = VerdictKind.Timeout, Error = $"no result within {Live.Settings.Verdict.DeadlineMs} ms" });
        }
    }

    private void Publish(FrameMeta meta, FrameOutcome o)
    {
        var (policy, recipe) = Current();
        bool reject = policy.Rejects(o.Kind);
        double latencyMs = Stopwatch.GetElapsedTime(meta.CaptureTimestamp).TotalMilliseconds;
        _latency.Add(latencyMs);
        var json = new Dictionary<string, object?>
        {
            ["frame_id"] = meta.Id,
            ["run_id"] = _state.RunId,
            ["part_id"] = meta.PartId,
            ["line"] = _topics.Line,
            ["camera"] = Name,
            ["timestamp_ms"] = meta.CaptureUtc.ToUnixTimeMilliseconds(),
            ["verdict"] = VerdictNames.Wire(o.Kind),
            ["reject"] = reject,
            ["score"] = float.IsFinite(o.Score) ? Math.Round(o.Score, 5) : null,
            ["calibrated"] = float.IsFinite(o.Calibrated) ? Math.Round(o.Calibrated, 4) : null,
            ["threshold"] = o.Threshold ?? policy.Threshold,
            ["latency_ms"] = Math.Round(latencyMs, 2),
            ["coreset_version"] = o.CoresetVersion,
            ["reference_frames"] = o.ReferenceFrames,
            ["model_hash"] = _modelHash,
            ["recipe"] = o.Recipe ?? recipe,
            ["error"] = o.Error,
        };
        try
        {
            _link.Enqueue(new OutgoingMessage(_topics.Verdict(Name), JsonSerializer.SerializeToUtf8Bytes(json)));
            // The reject topic is for the simplest PLC: "<frame id>,<1 reject | 0 accept>".
            _link.Enqueue(new OutgoingMessage(_topics.Reject(Name), Encoding.ASCII.GetBytes($"{meta.Id},{(reject ? 1 : 0)}")));
        }
        catch (Exception e)
        {
            // The link must not throw; if it does, the verdict is lost: counted, shown, logged, and the
            // sequencer goes on with the next frame.
            Interlocked.Increment(ref VerdictsUnpublished);
            LastError = $"publish: frame {meta.Id}: {e.Message}";
            _health.Report(Stages.Publish, LastError);
            if (_publishFaultLog.Allow(out long held)) _log.LogError(e, "Camera {Camera}: the verdict for frame {Frame} could not be handed to the MQTT link; lost ({Held} similar loss(es) not logged since the last)", Name, meta.Id, held);
            return;
        }
        switch (o.Kind)
        {
            case VerdictKind.Pass: Interlocked.Increment(ref Passed); break;
            case VerdictKind.Fail: Interlocked.Increment(ref Failed); break;
            case VerdictKind.Unsure: Interlocked.Increment(ref Unsure); break;
            case VerdictKind.WarmingUp: Interlocked.Increment(ref WarmingUp); break;
            case VerdictKind.Timeout: Interlocked.Increment(ref Timeouts); break;
            case VerdictKind.Error: Interlocked.Increment(ref Errors); break;
            case VerdictKind.Dropped: Interlocked.Increment(ref Dropped); break;
        }
        // A heatmap may exist only for the archive: publish it only if heatmap.publish selects this part.
        if (o.Heatmap is { } jpeg && InspectorSettings.Selects(Live.Settings.Heatmap.Publish, o.Kind.IsFlagged()))
        {
            try
            {
                _link.TryEnqueueBestEffort(new OutgoingMessage(_topics.Heatmap(Name), jpeg, false,
                    [new("frame_id", meta.Id.ToString(CultureInfo.InvariantCulture)), new("part_id", meta.PartId ?? ""), new("verdict", VerdictNames.Wire(o.Kind))]));
            }
            catch (Exception e)
            {
                _health.Report(Stages.Publish, $"heatmap: {e.Message}");
            }
        }
        if (o.Kind is VerdictKind.Fail or VerdictKind.Error or VerdictKind.Timeout or VerdictKind.Dropped)
        {
            _log.LogInformation("Camera {Camera}: frame {Frame} ({Part}) {Verdict} score {Score:0.00} reject {Reject}{Error}", Name, meta.Id, meta.PartId, VerdictNames.Wire(o.Kind), o.Calibrated, reject, o.Error is null ? "" : ": " + o.Error);
        }
    }

    // ---------------------------------------------------------------- commands + status

    // Part ids the line announces on <camera>/part, one message per part, before the part reaches the
    // camera: each is given to the next frame captured. Bounded: a line that announces parts no camera
    // sees would otherwise grow it forever.
    private readonly ConcurrentQueue<string> _partIds = new();

    private readonly LogThrottle _partLog = new(TimeSpan.FromSeconds(10)), _commandLog = new(TimeSpan.FromSeconds(10));

    /// <summary>The largest command accepted: a command is a few dozen bytes; anything near this is not one.</summary>
    internal const int MaxCommandBytes = 16 * 1024;

    private const string CommandForm = "expected {\"id\":\"…\",\"command\":\"reset_coreset\"} or {\"id\":\"…\",\"command\":\"switch_recipe\",\"recipe\":\"…\"}";

    private Task OnMessageAsync(string topic, byte[] payload)
    {
        if (topic == _topics.Part(Name))
        {
            _partIds.Enqueue(Clip(Encoding.UTF8.GetString(payload).Trim(), 256));
            long stale = 0;
            string? oldest = null;
            while (_partIds.Count > 1000 && _partIds.TryDequeue(out string? s))
            {
                stale++;
                oldest = s;
            }
            if (stale > 0)
            {
                Interlocked.Add(ref PartIdsDiscarded, stale);
                LastError = $"part id '{oldest}' announced but no frame captured for it (more than 1000 waiting)";
                if (_partLog.Allow(out long held)) _log.LogWarning("Camera {Camera}: {Error}; {Total} part id(s) discarded so far ({Held} such warning(s) not logged since the last)", Name, LastError, Interlocked.Read(ref PartIdsDiscarded), held);
            }
            return Task.CompletedTask;
        }
        // Every message on the command topic is answered: applied, or refused saying why. Nothing of a
        // refused payload is echoed beyond a short id and command name.
        string id = "", command = "";
        string? recipe = null;
        if (payload.Length > MaxCommandBytes)
        {
            Ack(id, command, false, $"a command of {payload.Length} bytes is refused (at most {MaxCommandBytes}); {CommandForm}");
            return Task.CompletedTask;
        }
        try
        {
            using var doc = JsonDocument.Parse(payload);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                Ack(id, command, false, $"a JSON {Kind(root.ValueKind)} is not a command; {CommandForm}");
                return Task.CompletedTask;
            }
            if (root.TryGetProperty("id", out var i)) id = Clip(i.ValueKind == JsonValueKind.String ? i.GetString()! : i.GetRawText(), 64);
            if (!root.TryGetProperty("command", out var c) || c.ValueKind != JsonValueKind.String)
            {
                Ack(id, command, false, c.ValueKind == JsonValueKind.Undefined ? $"no 'command' field; {CommandForm}" : $"'command' must be a string, not a {Kind(c.ValueKind)}; {CommandForm}");
                return Task.CompletedTask;
            }
            command = Clip(c.GetString()!, 64);
            if (root.TryGetProperty("recipe", out var r) && r.ValueKind != JsonValueKind.Null)
            {
                if (r.ValueKind != JsonValueKind.String)
                {
                    Ack(id, command, false, $"'recipe' must be a string, not a {Kind(r.ValueKind)}; {CommandForm}");
                    return Task.CompletedTask;
                }
                recipe = r.GetString();
            }
        }
        catch (JsonException e)
        {
            Ack(id, command, false, $"not JSON ({Clip(e.Message, 200)}); {CommandForm}");
            return Task.CompletedTask;
        }
        switch (command)
        {
            case "reset_coreset":
                _commands.Enqueue((id, command, null));
                break;
            case "switch_recipe" when recipe is not null && Live.Settings.Recipe(recipe) is not null:
                _commands.Enqueue((id, command, recipe));
                break;
            case "switch_recipe":
                Ack(id, command, false, $"unknown recipe '{Clip(recipe ?? "", 64)}'; defined: {string.Join(", ", Live.Settings.Recipes.Select(x => x.Name))}");
                break;
            default:
                Ack(id, command, false, $"unknown command '{command}'; expected reset_coreset or switch_recipe");
                break;
        }
        return Task.CompletedTask;
    }

    /// <summary>Part ids announced that no frame was captured for, dropped beyond 1000 waiting.</summary>
    public long PartIdsDiscarded;

    private static string Kind(JsonValueKind k) => k switch
    {
        JsonValueKind.Array => "array",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        JsonValueKind.Object => "object",
        _ => "string",
    };

    private static string Clip(string s, int max) => s.Length <= max ? s : s[..max] + "…";

    /// <summary>Applies queued commands on the inference thread, which owns the engine.</summary>
    private void ApplyCommands()
    {
        while (_commands.TryDequeue(out var cmd))
        {
            if (cmd.Command == "switch_recipe") _state.Recipe = cmd.Recipe!;
            string seed = Live.Settings.KnownGoodFolder(_state.Recipe);
            _inspector.Engine.Reset();
            if (seed.Length > 0) Seed(seed);
            string state = _inspector.Engine.IsWarm ? "scoring at once (seeded from known-good images)" : $"warming up over the next {Live.Settings.Engine.Batch} frames";
            _log.LogInformation("Camera {Camera}: {Command} applied (recipe '{Recipe}'): coreset reset, {State}", Name, cmd.Command, _state.Recipe, state);
            Ack(cmd.Id, cmd.Command, true, $"coreset reset; recipe '{_state.Recipe}'; {state}");
        }
    }

    private void Ack(string id, string command, bool ok, string message)
    {
        var json = new Dictionary<string, object?> { ["id"] = id, ["command"] = command, ["ok"] = ok, ["message"] = message, ["timestamp_ms"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() };
        try
        {
            _link.Enqueue(new OutgoingMessage(_topics.CommandAck(Name), JsonSerializer.SerializeToUtf8Bytes(json)));
        }
        catch (Exception e)
        {
            _health.Report(Stages.Publish, $"command ack: {e.Message}");
            _log.LogError(e, "Camera {Camera}: the acknowledgement of command {Id} could not be handed to the MQTT link", Name, id);
        }
        if (!ok && _commandLog.Allow(out long held)) _log.LogWarning("Camera {Camera}: command {Command} refused: {Message} ({Held} refusal(s) not logged since the last)", Name, command, message, held);
    }

    private async Task StatusLoop(CancellationToken ct)
    {
        long lastFrames = 0, lastLost = _link.Counters.Lost;
        var sw = Stopwatch.StartNew();
        while (!ct.IsCancellationRequested)
        {
            // Messages the link lost since the last status (spool full, broker refusals): the pipeline
            // reads degraded while it loses them, with the link's own account of why.
            long lost = _link.Counters.Lost;
            if (lost > lastLost) _health.Report(Stages.Publish, $"{lost - lastLost} message(s) lost in delivery: {_link.LastError}");
            lastLost = lost;
            long frames = Interlocked.Read(ref Frames);
            double fps = (frames - lastFrames) / Math.Max(1e-3, sw.Elapsed.TotalSeconds);
            lastFrames = frames;
            sw.Restart();
            try
            {
                _link.SetStatus(JsonSerializer.SerializeToUtf8Bytes(StatusJson(fps)));
            }
            catch (Exception e)
            {
                _health.Report(Stages.Status, e.Message);
                _log.LogError(e, "Camera {Camera}: status could not be built", Name);
            }
            try { await Task.Delay(TimeSpan.FromSeconds(Live.Settings.Mqtt.StatusIntervalS), ct); }
            catch (OperationCanceledException) { break; }
        }
    }

    internal Dictionary<string, object?> StatusJson(double fps)
    {
        var engine = _inspector.Engine;
        var (p50, p95, p99) = _latency.Percentiles();
        var link = _link.Counters;
        return new Dictionary<string, object?>
        {
            ["state"] = _health.State,
            ["stages"] = _health.Snapshot(),
            ["camera"] = Name,
            ["timestamp_ms"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            ["uptime_s"] = Math.Round(_uptime.Elapsed.TotalSeconds),
            ["fps"] = Math.Round(fps, 2),
            ["frames"] = Interlocked.Read(ref Frames),
            ["verdicts"] = new Dictionary<string, long>
            {
                ["pass"] = Passed, ["fail"] = Failed, ["unsure"] = Unsure, ["warming_up"] = WarmingUp,
                ["timeout"] = Timeouts, ["error"] = Errors, ["dropped"] = Dropped,
            },
            ["latency_ms"] = new Dictionary<string, double> { ["p50"] = p50, ["p95"] = p95, ["p99"] = p99 },
            ["queues"] = new Dictionary<string, long> { ["inference"] = _work.Reader.Count, ["outgoing"] = link.Queued, ["spool"] = link.Spooled },
            ["coreset"] = new Dictionary<string, object>
            {
                ["size"] = engine.Coreset.Count, ["version"] = engine.Coreset.Version, ["warm"] = engine.IsWarm,
                ["reservoir_frames"] = engine.Reservoir?.Count ?? 0, ["quarantined"] = engine.Quarantined,
            },
            ["camera_counters"] = new Dictionary<string, long>
            {
                ["timeouts"] = SourceCounters.Timeouts, ["incomplete_buffers"] = SourceCounters.Incomplete, ["reconnects"] = SourceCounters.Reconnects,
            },
            // Every message the link was given, and what became of it: enqueued + recovered = published +
            // queued + spool + the losses (refused, spool_overflow, spool_write_failed, spool_corrupt).
            ["delivery"] = new Dictionary<string, object>
            {
                ["connected"] = link.Connected, ["enqueued"] = link.Enqueued, ["recovered"] = link.Recovered, ["published"] = link.Delivered,
                ["refused"] = link.Refused, ["spool_overflow"] = link.SpoolOverflow, ["spool_write_failed"] = link.SpoolWriteFailed,
                ["spool_corrupt"] = link.SpoolCorrupt, ["heatmaps_dropped"] = link.BestEffortDropped,
                ["verdicts_unpublished"] = Interlocked.Read(ref VerdictsUnpublished), ["late_results"] = LateResults,
                ["archive_skipped"] = Interlocked.Read(ref _archive.Skipped), ["part_ids_discarded"] = Interlocked.Read(ref PartIdsDiscarded),
            },
            ["recipe"] = _state.Recipe,
            ["model_hash"] = _modelHash,
            ["config"] = new Dictionary<string, object?> { ["version"] = Live.Version, ["error"] = Live.ReloadError },
            ["last_error"] = LastError ?? _link.LastError,
        };
    }

    /// <summary>Pushes a status now (config reload results must not wait for the next period).</summary>
    public void StatusNow() => _link.SetStatus(JsonSerializer.SerializeToUtf8Bytes(StatusJson(0)));

    private void TryStatusNow()
    {
        try { StatusNow(); }
        catch (Exception e) { _log.LogError(e, "Camera {Camera}: status could not be built", Name); }
    }

    public async ValueTask DisposeAsync()
    {
        // Graceful stop: no new frames, then let every frame already captured be answered (scored, or
        // timed out by its deadline), then stop the rest and let the link spool what it could not send.
        _stopAcquire.Cancel();
        var limit = Stopwatch.StartNew();
        while ((_work.Reader.Count > 0 || _sequencerPending > 0 || _events.Reader.Count > 0) && limit.ElapsedMilliseconds < Live.Settings.Verdict.DeadlineMs + 2000)
        {
            await Task.Delay(20);
        }
        await Task.Delay(100); // let the sequencer hand the last verdicts to the link
        _link.StopWhenIdle();
        try { await Task.WhenAll(_loops[0]).WaitAsync(TimeSpan.FromSeconds(5)); }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException) { }
        _stop.Cancel();
        try { await Task.WhenAll(_loops).WaitAsync(TimeSpan.FromSeconds(15)); }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException) { }
        await _link.DisposeAsync();
        _stopAcquire.Dispose();
        _stop.Dispose();
    }
}

/// <summary>
/// What a camera keeps across pipeline restarts (a camera setting edited, the model changed): its frame
/// ids, monotonic for the life of the process, so that a subscriber de-duplicating by frame id never
/// confuses two parts (<see cref="RunId"/>, the service's start in UTC ms, tells one run from the next);
/// and its active recipe, so that an acknowledged recipe switch is not undone by a restart.
/// </summary>
internal sealed class CameraState(long runId, string configuredRecipe)
{
    private long _last;
    private volatile string _recipe = configuredRecipe;

    public long RunId => runId;

    public long Next() => Interlocked.Increment(ref _last);

    /// <summary>The active recipe: the configured one until a switch_recipe command changes it.</summary>
    public string Recipe
    {
        get => _recipe;
        set => _recipe = value;
    }

    /// <summary>The camera's <c>recipe:</c> in the config; an edit of that field replaces the active recipe.</summary>
    public string ConfiguredRecipe { get; private set; } = configuredRecipe;

    public void Configure(string recipe)
    {
        if (recipe == ConfiguredRecipe) return;
        ConfiguredRecipe = recipe;
        Recipe = recipe;
    }
}

/// <summary>Capture-to-publish latency over the last frames, for the status topic.</summary>
internal sealed class LatencyWindow(int size)
{
    private readonly double[] _ring = new double[size];
    private readonly Lock _gate = new();
    private int _count, _next;

    public void Add(double ms)
    {
        lock (_gate)
        {
            _ring[_next] = ms;
            _next = (_next + 1) % _ring.Length;
            if (_count < _ring.Length) _count++;
        }
    }

    public (double P50, double P95, double P99) Percentiles()
    {
        double[] copy;
        lock (_gate) copy = _ring[.._count];
        if (copy.Length == 0) return (0, 0, 0);
        Array.Sort(copy);
        double At(double q) => Math.Round(copy[Math.Min(copy.Length - 1, (int)Math.Ceiling(q * copy.Length) - 1)], 1);
        return (At(0.5), At(0.95), At(0.99));
    }
}
