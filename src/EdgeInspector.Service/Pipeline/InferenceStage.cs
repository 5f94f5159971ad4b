using System.Diagnostics;
using System.Threading.Channels;
using EdgeInspector.Cameras;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Core.Verdicts;
using EdgeInspector.Imaging;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// Infer: takes frames from the bounded queue in small batches, decodes them, runs the backbone and the
/// engine, and hands each result to the decider. The only thread that touches the engine: commands are
/// applied here, and what other threads may read of the engine is published as an <see cref="EngineState"/>.
/// A frame that cannot be decoded, or a backbone or engine failure, is that frame's <c>error</c>, never a pass.
/// The engine's learned state is kept on disk by a <see cref="SnapshotKeeper"/> at <paramref name="snapshotPath"/>.
/// </summary>
internal sealed class InferenceStage(
    string camera, FrameInspector inspector, ChannelReader<Work> work, FrameEvents events, VerdictDecider decider, CommandHandler commands,
    VerdictPublisher publisher, CameraState state, Func<LiveSettings> live, PipelineCounters counters, StageHealth health, ILogger log,
    string modelHash, string snapshotPath)
{
    private readonly LogThrottle _faultLog = new(TimeSpan.FromSeconds(10)), _badFrameLog = new(TimeSpan.FromSeconds(10));
    private EngineState _engineState = EngineState.Empty;

    public Heartbeat Heartbeat { get; } = new();

    /// <summary>The engine as last published by this stage: safe to read from any thread.</summary>
    public EngineState Engine => Volatile.Read(ref _engineState);

    private void PublishEngineState()
    {
        var e = inspector.Engine;
        Volatile.Write(ref _engineState, new EngineState(e.IsWarm, e.ReservoirFrames, e.Quarantined, _snapshots.Saved, e.ScoringPath, inspector.ViewsPath));
    }

    private bool _started;
    private readonly LoadShedding _shedding = new();
    // A frame taken from the queue that did not fit the batch being made: the first of the next one.
    private Work? _held;
    private readonly SnapshotKeeper _snapshots = new(camera, snapshotPath, modelHash, inspector.RegionKey, state, live, counters, log);

    /// <summary>The inference loop. Restarted by the supervisor after a fault; the start-up work (a snapshot or known-good seeding) runs on the first start only.</summary>
    public void Run(string? seedFolder, CancellationToken ct)
    {
        if (!_started)
        {
            _started = true;
            if (!_snapshots.TryRestore(inspector.Engine) && !string.IsNullOrEmpty(seedFolder)) Seed(seedFolder);
        }
        PublishEngineState();
        try
        {
            Loop(ct);
        }
        finally
        {
            _held?.Frame.Dispose();
            _held = null;
            _snapshots.Stop(inspector.Engine);
        }
    }

    private void Loop(CancellationToken ct)
    {
        var batch = new List<Work>();
        var images = new List<DecodedImage?>();
        var geometry = new List<TileGrid?>();
        var errors = new List<string?>();
        while (!ct.IsCancellationRequested)
        {
            Heartbeat.Beat();
            PollBuild();
            if (_build is null) ApplyCommands();
            _snapshots.Tick(inspector.Engine);
            if (CatchUp()) continue;
            batch.Clear();
            if (_held is null)
            {
                try
                {
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    wait.CancelAfter(500);
                    if (!work.WaitToReadAsync(wait.Token).AsTask().GetAwaiter().GetResult()) break;
                }
                catch (OperationCanceledException)
                {
                    continue;
                }
            }
            var settings = live().Settings;
            long now = Stopwatch.GetTimestamp();
            long first = 0;
            while (batch.Count < settings.Engine.InferenceBatch && Next(out var w))
            {
                long deadline = w.Meta.Deadline(settings.Verdict);
                // A frame whose deadline passed while it queued is answered timeout by the sequencer, at its
                // deadline, whatever happens here: the backbone's time goes to frames that can still make theirs.
                if (now > deadline)
                {
                    w.Frame.Dispose();
                    Interlocked.Increment(ref counters.ExpiredUnscored);
                    continue;
                }
                if (batch.Count == 0 && _shedding.ShouldShed(now, deadline, newerWaiting: work.TryPeek(out _)))
                {
                    w.Frame.Dispose();
                    Interlocked.Increment(ref counters.Shed);
                    events.Complete(w.Meta.Id, new FrameOutcome { Kind = VerdictKind.Timeout, Error = _shedding.Reason(now, w.Meta.CaptureTimestamp, settings.Verdict.DeadlineMs) });
                    continue;
                }
                // A batch is answered when its last frame is done: one more frame must not make the first late.
                if (batch.Count > 0 && !_shedding.Fits(now, first, batch.Count + 1))
                {
                    _held = w;
                    break;
                }
                if (batch.Count == 0) first = deadline;
                batch.Add(w);
            }
            if (batch.Count == 0) continue;
            long started = Stopwatch.GetTimestamp();
            images.Clear();
            geometry.Clear();
            errors.Clear();
            foreach (var w in batch)
            {
                DecodedImage? image = null;
                try
                {
                    image = FrameDecoder.Decode(w.Frame);
                    // A region the sensor (or replayed image) does not hold, or tiles below the model's input:
                    // nothing of this frame can be judged, and the error names the setting.
                    geometry.Add(inspector.Cut(image, w.Frame.Origin, camera));
                    images.Add(image);
                    errors.Add(null);
                }
                catch (ImageDecodeException e)
                {
                    image?.Dispose();
                    images.Add(null);
                    geometry.Add(null);
                    errors.Add(e.Message);
                }
                finally
                {
                    w.Frame.Dispose();
                }
            }
            // While the warm-up build runs with its backlog full, a frame's features would only be let go:
            // the backbone is not run on it, so that the low-priority build gets the CPU. At a line's full
            // rate the live frames would otherwise leave it none, and the line would stay in warm-up.
            bool infer = _build is null || !_backlog.IsFull;
            try
            {
                if (infer) Process(batch, images, geometry, errors);
                else AnswerUnlearned(batch, errors);
            }
            finally
            {
                foreach (var m in images) m?.Dispose();
                if (infer) _shedding.Measured(Stopwatch.GetTimestamp() - started, batch.Count);
                if (inspector.Engine.IsWarm) _snapshots.Learned();
                PublishEngineState();
            }
        }
    }

    /// <summary>The next frame for the batch being made: the one held back from the last, else the queue's head.</summary>
    private bool Next(out Work w)
    {
        if (_held is { } held)
        {
            _held = null;
            w = held;
            return true;
        }
        return work.TryRead(out w!);
    }

    private void Process(List<Work> batch, List<DecodedImage?> images, List<TileGrid?> geometry, List<string?> errors)
    {
        FrameFeatures[]?[] features;
        try
        {
            features = inspector.Extract(images, geometry);
        }
        catch (Exception e)
        {
            counters.LastError = $"backbone: {e.Message}";
            health.Report(Stages.Infer, counters.LastError);
            if (_faultLog.Allow(out long held)) log.LogError(e, "Camera {Camera}: backbone failed on frames {First}..{Last} ({Held} similar failure(s) not logged since the last)", camera, batch[0].Meta.Id, batch[^1].Meta.Id, held);
            foreach (var w in batch) events.Complete(w.Meta.Id, new FrameOutcome { Kind = VerdictKind.Error, Cause = ErrorCode.ModelFault, Error = "backbone failed: " + e.Message });
            return;
        }
        for (int i = 0; i < batch.Count; i++)
        {
            var meta = batch[i].Meta;
            if (features[i] is not { } f)
            {
                AnswerUnreadable(meta, errors[i]);
                continue;
            }
            events.Complete(meta.Id, Score(meta, f, geometry[i]!, images[i]!));
        }
    }

    /// <summary>
    /// Frames that arrive while the warm-up build runs and its backlog is full: answered <c>warming_up</c>
    /// without the backbone (they could not be learned from), but a frame that cannot be read is still an
    /// error: a failure never publishes a pass.
    /// </summary>
    private void AnswerUnlearned(List<Work> batch, List<string?> errors)
    {
        for (int i = 0; i < batch.Count; i++)
        {
            if (errors[i] is { } error)
            {
                AnswerUnreadable(batch[i].Meta, error);
                continue;
            }
            _backlog.Skip();
            WarnOnFirstNotKept();
            events.Complete(batch[i].Meta.Id, new FrameOutcome { Kind = VerdictKind.WarmingUp });
        }
    }

    private void AnswerUnreadable(FrameMeta meta, string? error)
    {
        counters.LastError = error;
        if (_badFrameLog.Allow(out long held)) log.LogWarning("Camera {Camera}: frame {Frame} ({Part}) cannot be processed: {Error} ({Held} such frame(s) not logged since the last; each is answered 'error')", camera, meta.Id, meta.PartId, error, held);
        events.Complete(meta.Id, new FrameOutcome { Kind = VerdictKind.Error, Cause = ErrorCode.DecodeFailed, Error = error });
    }

    /// <summary>The first frame of a warm-up that the backlog could not keep is logged.</summary>
    private void WarnOnFirstNotKept()
    {
        if (_backlog.NotKept == 1)
            log.LogWarning("Camera {Camera}: the warm-up backlog is full ({Capacity} frame(s), what engine.memory_mb {Limit} leaves beside the engine); until the warm-up is done frames are answered warming_up without the backbone, so that the build gets the CPU, and are not learned from",
                camera, _backlog.Capacity, live().Settings.Engine.MemoryMb);
    }

    private void Seed(string folder)
    {
        try
        {
            var sw = Stopwatch.StartNew();
            int n = inspector.SeedKnownGood(folder);
            log.LogInformation("Camera {Camera}: reservoir seeded from {Count} known-good image(s) in {Folder} ({Ms:0} ms): scoring from the first frame", camera, n, folder, sw.Elapsed.TotalMilliseconds);
        }
        catch (Exception e)
        {
            counters.LastError = $"known-good seeding: {e.Message}";
            log.LogError(e, "Camera {Camera}: seeding from {Folder} failed; starting zero-shot", camera, folder);
        }
    }

    // The push that completes the warm-up batch fills the reservoir and scores the whole batch: seconds
    // on a small CPU. It runs off the loop, at a lower priority (BackgroundScheduler), so that frames keep
    // being answered on time meanwhile ("warming_up") and the build only takes the CPU they leave; their features wait (as many
    // as engine.memory_mb allows: WarmupBacklog) and are pushed, in order, once it is done, so they still teach
    // the engine and their scores reach the log. Once the backlog is full, frames skip the backbone until the
    // build is done (AnswerUnlearned), leaving it the CPU. A live frame's deadline outranks that backlog: a waiting
    // frame is pushed only when no live frame is queued (CatchUp), so the catch-up never makes one late.
    private Task<IReadOnlyList<TiledResult>>? _build;
    private readonly WarmupBacklog _backlog = new(inspector.Release);
    private int _catchUpScored, _catchUpFlagged;

    private void PollBuild()
    {
        if (_build is not { IsCompleted: true } build) return;
        _build = null;
        var engine = inspector.Engine;
        if (build.IsFaulted)
        {
            counters.LastError = $"engine: warm-up build failed: {build.Exception!.GetBaseException().Message}";
            health.Report(Stages.Infer, counters.LastError);
            log.LogError(build.Exception, "Camera {Camera}: warm-up build failed; starting over", camera);
            engine.Reset();
            _backlog.Clear();
            PublishEngineState();
            return;
        }
        _catchUpScored = build.Result.Count;
        _catchUpFlagged = 0;
        var policy = publisher.Current().Policy;
        foreach (var r in build.Result) if (policy.Decide(r.Calibrated).IsFlagged()) _catchUpFlagged++;
        _snapshots.BecameWarm();
        log.LogInformation("Camera {Camera}: engine warm (reservoir {Frames} frames); scoring every frame from now on, and the {Waiting} frame(s) that arrived during the warm-up whenever no live frame waits", camera, engine.ReservoirFrames, _backlog.Count);
        if (_backlog.Count == 0) LogCaughtUp();
        // Said now, not with the next frame: a triggered camera may not send one until the PLC sees ready.
        PublishEngineState();
    }

    /// <summary>Pushes one frame that waited out the warm-up, if no live frame is queued. True when it did.</summary>
    private bool CatchUp()
    {
        if (_build is not null || _held is not null || work.TryPeek(out _) || !_backlog.TryTake(out var waiting)) return false;
        var (id, f, g) = waiting;
        var policy = publisher.Current().Policy;
        try
        {
            foreach (var r in inspector.Engine.Push(f, g, id))
            {
                _catchUpScored++;
                if (policy.Decide(r.Calibrated).IsFlagged()) _catchUpFlagged++;
            }
        }
        catch (Exception e)
        {
            ReportEngineFault(e, _snapshots.Ids.ToFrame(id), "after the warm-up ");
        }
        _snapshots.Learned();
        if (_backlog.Count == 0) LogCaughtUp();
        PublishEngineState();
        return true;
    }

    // Frames answered warming_up are scored once the engine is warm: logged for the audit trail.
    private void LogCaughtUp() => log.LogInformation("Camera {Camera}: {Scored} frame(s) answered warming_up were scored afterwards, {Flagged} of them would have failed; {NotKept} more were not kept (the warm-up backlog holds {Capacity}, as engine.memory_mb allows), {Skipped} of them answered without the backbone to leave the build the CPU",
        camera, _catchUpScored, _catchUpFlagged, _backlog.NotKept, _backlog.Capacity, _backlog.Skipped);

    private FrameOutcome Score(FrameMeta meta, FrameFeatures[] f, TileGrid g, DecodedImage image)
    {
        var engine = inspector.Engine;
        long id = _snapshots.Ids.ToEngine(meta.Id);
        try
        {
            if (_build is not null)
            {
                if (!_backlog.Offer(id, f, g)) WarnOnFirstNotKept();
                return new FrameOutcome { Kind = VerdictKind.WarmingUp };
            }
            if (!engine.IsWarm && engine.WarmupBuffered + 1 >= engine.Options.Batch)
            {
                _backlog.Open(engine.FramesBeside(live().Settings.Engine.MemoryBytes));
                var background = BackgroundScheduler.Shared;
                engine.Parallelism = background.Parallelism;
                _build = background.Run(() =>
                {
                    try
                    {
                        return engine.Push(f, g, id);
                    }
                    finally
                    {
                        // Live frames are scored at normal priority again; nothing else touches the engine until the build is taken up.
                        engine.Parallelism = new ParallelOptions();
                    }
                });
                return new FrameOutcome { Kind = VerdictKind.WarmingUp };
            }
            TiledResult? mine = null;
            foreach (var r in engine.Push(f, g, id))
            {
                if (r.FrameId == id) mine = r;
            }
            // Scored, but with no calibration yet (a single known-good image): not a verdict to act on.
            if (mine is null || !engine.IsCalibrated) return new FrameOutcome { Kind = VerdictKind.WarmingUp };
            return decider.Decide(meta, mine, _snapshots.Ids.Resolve(mine.ReferenceFrames), image);
        }
        catch (Exception e)
        {
            ReportEngineFault(e, meta.Id, "");
            return new FrameOutcome { Kind = VerdictKind.Error, Cause = ErrorCode.ModelFault, Error = "scoring failed: " + e.Message };
        }
    }

    /// <summary>An engine failure on one frame: the status shows it at once, the log at most once per 10 s.</summary>
    private void ReportEngineFault(Exception e, long frame, string when)
    {
        counters.LastError = $"engine: {e.Message}";
        health.Report(Stages.Infer, counters.LastError);
        if (_faultLog.Allow(out long held)) log.LogError(e, "Camera {Camera}: scoring frame {Frame} {When}failed ({Held} similar failure(s) not logged since the last)", camera, frame, when, held);
    }

    /// <summary>Applies queued commands: each resets what the engine learned (and a recipe switch changes the recipe).</summary>
    private void ApplyCommands()
    {
        while (commands.TryTake(out var cmd))
        {
            if (cmd!.Name == "switch_recipe") state.Recipe = cmd.Recipe!;
            var settings = live().Settings;
            string seed = settings.KnownGoodFolder(state.Recipe);
            inspector.Engine.Reset();
            _backlog.Clear();
            _snapshots.Delete();
            if (seed.Length > 0) Seed(seed);
            PublishEngineState();
            string now = inspector.Engine.IsWarm ? "scoring at once (seeded from known-good images)" : $"warming up over the next {inspector.Engine.Options.Batch} frames";
            log.LogInformation("Camera {Camera}: {Command} applied (recipe '{Recipe}'): engine reset, {State}", camera, cmd.Name, state.Recipe, now);
            publisher.Ack(cmd.Id, cmd.Name, true, $"engine reset; recipe '{state.Recipe}'; {now}");
        }
    }
}

/// <summary>Raw camera pixels and encoded files to decoded images, with errors that name the frame.</summary>
internal static class FrameDecoder
{
    public static DecodedImage Decode(CapturedFrame frame)
    {
        if (frame.CaptureError is { } why) throw new ImageDecodeException($"{frame.Origin}: {why}");
        if (frame.EncodedBytes is { } bytes) return DecodedImage.FromEncoded(bytes, frame.Origin);
        var layout = frame.Layout switch
        {
            PixelLayout.Mono8 => RawLayout.Mono8,
            PixelLayout.Bgr8 => RawLayout.Bgr8,
            PixelLayout.Rgb8 => RawLayout.Rgb8,
            PixelLayout.BayerRG8 => RawLayout.BayerRG8,
            PixelLayout.BayerGR8 => RawLayout.BayerGR8,
            PixelLayout.BayerGB8 => RawLayout.BayerGB8,
            PixelLayout.BayerBG8 => RawLayout.BayerBG8,
            _ => throw new ImageDecodeException($"{frame.Origin}: pixel format 0x{(uint)frame.Layout:X8} is not supported (use Mono8, RGB8, BGR8 or Bayer*8)."),
        };
        return DecodedImage.FromRaw(frame.RawPixels, frame.Width, frame.Height, layout, frame.Origin);
    }
}
