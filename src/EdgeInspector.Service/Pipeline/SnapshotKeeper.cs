using System.Diagnostics;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// Keeps a camera's learned state on disk (<see cref="EngineSnapshots"/>), for the inference stage: taken
/// up at start; saved once the engine is warm, then at least every <c>engine.snapshot_interval_s</c> while
/// it learns, and at stop; deleted by a reset. Called on the inference thread only, which owns the engine:
/// the state is captured there and written on the background scheduler's low-priority threads, one write
/// at a time, so a frame never waits for the disk or for the write's processor time.
/// </summary>
internal sealed class SnapshotKeeper(string camera, string path, string modelHash, string region, CameraState state, Func<LiveSettings> live, PipelineCounters counters, ILogger log)
{
    private readonly LogThrottle _failureLog = new(TimeSpan.FromSeconds(60));
    private long _savedTicks; // Environment.TickCount64 of the last save started
    private bool _saveNow; // the engine just became warm: its first state is saved at once
    private bool _learned; // frames were pushed into a warm engine since the last save
    private Task<string?>? _saving; // a write in flight: null when it succeeded, else the error

    /// <summary>When the state on disk was written (by this run or, after a warm restart, the one before); null: none.</summary>
    public DateTimeOffset? Saved { get; private set; }

    /// <summary>The ids the engine knows this run's frames by, and the runs its references come from.</summary>
    public EngineIds Ids { get; } = new(state.RunId);

    private SnapshotKey Key(TiledEngine engine) => SnapshotKey.For(modelHash, engine.Layout, engine.Options, state.Recipe, region);

    /// <summary>Takes up the snapshot if there is one that fits: true when the engine is warm from it.</summary>
    public bool TryRestore(TiledEngine engine)
    {
        var sw = Stopwatch.StartNew();
        var saved = EngineSnapshots.TryLoad(path, Key(engine), out string? refusal, out string? runs);
        try
        {
            if (saved is not null)
            {
                // The runs first: a list that cannot be read refuses the snapshot before the engine takes it up.
                Ids.Restore(runs, Held(engine, saved));
                engine.Restore(saved);
            }
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException)
        {
            (saved, refusal) = (null, e.Message);
        }
        if (saved is null)
        {
            if (refusal is not null) log.LogWarning("Camera {Camera}: snapshot {Path} refused: {Reason}; the engine warms up from the line instead", camera, path, refusal);
            return false;
        }
        Saved = File.GetLastWriteTimeUtc(path);
        log.LogInformation("Camera {Camera}: warm restart from snapshot {Path} (reservoir {Frames} frames, {Scores} calibration scores, saved {Saved:u}; {Ms:0} ms): scoring from the first frame",
            camera, path, saved[0].Frames.Count, saved[0].Calibration.Length, Saved, sw.Elapsed.TotalMilliseconds);
        return true;
    }

    /// <summary>Frames went into a warm engine: there is something to save.</summary>
    public void Learned() => _learned = true;

    /// <summary>The engine became warm (its warm-up batch was scored): saved at the next tick.</summary>
    public void BecameWarm() => _learned = _saveNow = true;

    /// <summary>Once per loop: takes up a finished write and starts the next one when it is due.</summary>
    public void Tick(TiledEngine engine)
    {
        Poll(block: false);
        if (_learned && engine.IsWarm && (_saveNow || Environment.TickCount64 - _savedTicks >= live().Settings.Engine.SnapshotIntervalS * 1000L)) Save(engine, wait: false);
    }

    /// <summary>At stop (or a fault of the loop): what was learned since the last save is written before the loop ends.</summary>
    public void Stop(TiledEngine engine)
    {
        if (_learned && engine.IsWarm) Save(engine, wait: true);
        else Poll(block: true);
    }

    /// <summary>A reset forgets what was learned, on disk too: a restart then warms up as after the reset.</summary>
    public void Delete()
    {
        Poll(block: true);
        _learned = _saveNow = false;
        Saved = null;
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogError("Camera {Camera}: the engine snapshot {Path} could not be deleted: {Error}", camera, path, e.Message);
        }
    }

    private void Save(TiledEngine engine, bool wait)
    {
        if (_saving is { IsCompleted: false })
        {
            if (!wait) return;
            _saving.Wait();
        }
        Poll(block: false);
        var captured = engine.Capture();
        var key = Key(engine);
        string runs = Ids.Text(Held(engine, captured));
        _learned = _saveNow = false;
        _savedTicks = Environment.TickCount64;
        // At low priority, as the warm-up build (decision 0007): a write takes a core for a fraction of a
        // second, and at normal priority the frames scored meanwhile waited for it.
        _saving = BackgroundScheduler.Shared.Run<string?>(() =>
        {
            try
            {
                EngineSnapshots.Save(path, key, captured, runs);
                return null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return e.Message;
            }
        });
        if (wait) Poll(block: true);
    }

    /// <summary>The frames (engine ids) that <paramref name="states"/> hold.</summary>
    private static HashSet<long> Held(TiledEngine engine, IReadOnlyList<LearnedState> states)
    {
        var held = new HashSet<long>();
        foreach (var s in states)
        {
            foreach (var f in s.Frames) held.Add(engine.FrameOf(f.Id));
        }
        return held;
    }

    /// <summary>Takes up a finished write: the time it was saved, or a failure (counted, logged, retried at the next interval).</summary>
    private void Poll(bool block)
    {
        if (_saving is not { } saving || (!block && !saving.IsCompleted)) return;
        string? error = saving.GetAwaiter().GetResult();
        _saving = null;
        if (error is null)
        {
            Saved = DateTimeOffset.UtcNow;
            return;
        }
        _learned = true;
        counters.LastError = $"engine snapshot: {error}";
        if (_failureLog.Allow(out long held)) log.LogError("Camera {Camera}: saving the engine snapshot to {Path} failed: {Error} ({Held} similar failure(s) not logged since the last); a restart now would warm up again", camera, path, error, held);
    }
}
