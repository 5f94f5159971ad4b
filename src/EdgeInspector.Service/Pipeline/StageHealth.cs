using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// What a pipeline's stages are doing, as the status topic and the watchdog see it. A stage is
/// <c>running</c>, <c>restarting</c> (its loop threw and waits to be started again) or <c>failed</c> (it
/// threw too often and the service is going down for its supervisor). A fault a stage survived (a
/// publish that threw, a backbone call that failed) is reported too: the pipeline reads
/// <c>degraded</c>, not <c>online</c>, until <see cref="Hold"/> has passed without another.
/// </summary>
/// <remarks>Thread-safe: stages report from their own threads, the status loop reads.</remarks>
internal sealed class StageHealth
{
    /// <summary>How long a reported fault keeps the pipeline <c>degraded</c>.</summary>
    public static readonly TimeSpan Hold = TimeSpan.FromSeconds(30);

    /// <summary>Loop failures within <see cref="Window"/> after which a stage is not restarted again.</summary>
    public const int MaxRestarts = 5;

    /// <summary>The window <see cref="MaxRestarts"/> counts over.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(60);

    private sealed class Entry
    {
        public string State = "running";
        public long Faults;
        public string? LastError;
        public long LastFaultTimestamp;
        public readonly Queue<long> LoopFailures = new();
    }

    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _stages = [];

    public StageHealth(params string[] stages)
    {
        foreach (string s in stages) _stages[s] = new Entry();
    }

    /// <summary>A fault the stage survived (it goes on with the next frame or message).</summary>
    public void Report(string stage, string error)
    {
        lock (_gate)
        {
            var e = _stages[stage];
            e.Faults++;
            e.LastError = error;
            e.LastFaultTimestamp = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>The stage's loop threw. Returns whether it may be restarted (false: too many failures in <see cref="Window"/>).</summary>
    public bool LoopFailed(string stage, Exception error)
    {
        lock (_gate)
        {
            var e = _stages[stage];
            long now = Stopwatch.GetTimestamp();
            e.Faults++;
            e.LastError = $"{error.GetType().Name}: {error.Message}";
            e.LastFaultTimestamp = now;
            e.LoopFailures.Enqueue(now);
            while (e.LoopFailures.Count > 0 && Stopwatch.GetElapsedTime(e.LoopFailures.Peek(), now) > Window) e.LoopFailures.Dequeue();
            bool restart = e.LoopFailures.Count < MaxRestarts;
            e.State = restart ? "restarting" : "failed";
            return restart;
        }
    }

    /// <summary>The stage's loop runs (again).</summary>
    public void Running(string stage)
    {
        lock (_gate) _stages[stage].State = "running";
    }

    /// <summary>True when every stage's loop is running.</summary>
    public bool AllRunning
    {
        get
        {
            lock (_gate)
            {
                foreach (var e in _stages.Values)
                {
                    if (e.State != "running") return false;
                }
                return true;
            }
        }
    }

    /// <summary><c>online</c>, <c>degraded</c> (a stage restarting, or a fault within <see cref="Hold"/>) or <c>failed</c>.</summary>
    public string State
    {
        get
        {
            lock (_gate)
            {
                string state = "online";
                foreach (var e in _stages.Values)
                {
                    if (e.State == "failed") return "failed";
                    if (e.State != "running" || (e.Faults > 0 && Stopwatch.GetElapsedTime(e.LastFaultTimestamp) < Hold)) state = "degraded";
                }
                return state;
            }
        }
    }

    /// <summary>Per stage: its state, faults so far, the last one and how long ago (seconds), for the status topic.</summary>
    public Dictionary<string, StageStatus> Snapshot()
    {
        lock (_gate)
        {
            var d = new Dictionary<string, StageStatus>();
            foreach (var (name, e) in _stages)
            {
                d[name] = new StageStatus(e.State, e.Faults, e.LastError, e.Faults > 0 ? Math.Round(Stopwatch.GetElapsedTime(e.LastFaultTimestamp).TotalSeconds, 1) : null);
            }
            return d;
        }
    }
}

/// <summary>
/// Lets a repeated warning through once, then at most once per period with the count it held back, so a
/// flood (a fault on every frame) says what happens without filling the disk.
/// </summary>
internal sealed class LogThrottle(TimeSpan period)
{
    private readonly Lock _gate = new();
    private long _last = long.MinValue;
    private long _held;

    /// <summary>True when this occurrence is to be logged; <paramref name="held"/> counts those skipped since the last one logged.</summary>
    public bool Allow(out long held)
    {
        lock (_gate)
        {
            long now = Stopwatch.GetTimestamp();
            if (_last != long.MinValue && Stopwatch.GetElapsedTime(_last, now) < period)
            {
                _held++;
                held = 0;
                return false;
            }
            _last = now;
            held = _held;
            _held = 0;
            return true;
        }
    }
}
