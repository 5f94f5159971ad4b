using System.Diagnostics;
using System.Threading.Channels;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Verdicts;

namespace EdgeInspector.Service;

/// <summary>What the pipeline knows of a frame from the moment it is captured.</summary>
internal sealed record FrameMeta(long Id, string? PartId, DateTimeOffset CaptureUtc, long CaptureTimestamp)
{
    /// <summary>When its verdict is due (Stopwatch ticks): capture plus <c>verdict.deadline_ms</c>.</summary>
    public long Deadline(VerdictSettings verdict) => CaptureTimestamp + (long)(verdict.DeadlineMs / 1000.0 * Stopwatch.Frequency);
}

/// <summary>A captured frame on its way from acquisition to inference.</summary>
internal sealed record Work(FrameMeta Meta, CapturedFrame Frame);

/// <summary>A frame's result before it is published.</summary>
internal sealed class FrameOutcome
{
    public VerdictKind Kind;
    public float Score = float.NaN;
    public float Calibrated = float.NaN;
    /// <summary>Ids of the reservoir frames that scored it, as their runs numbered them (null: not scored).</summary>
    public long[]? ReferenceFrames;
    /// <summary>The runs <see cref="ReferenceFrames"/> belong to, in their order (null: not scored).</summary>
    public ReferenceRun[]? ReferenceRuns;
    /// <summary>For scored frames: the threshold and recipe the verdict was decided with (hot reload or a
    /// recipe switch may change them before it is published).</summary>
    public double? Threshold;
    public string? Recipe;
    /// <summary>For scored frames: what the reject gate does, under the same policy (null: the publisher decides by the kind).</summary>
    public bool? Reject;
    public byte[]? Heatmap;
    public string? Error;
    /// <summary>For an error: what failed (the verdict's error_code); the other kinds have their own code.</summary>
    public ErrorCode Cause;
}

/// <summary>The pipeline's stage loops, as named on the status topic.</summary>
internal static class Stages
{
    public const string Acquire = "acquire", Infer = "infer", Sequence = "sequence", Publish = "publish", Status = "status", Archive = "archive";
    public static readonly string[] All = [Acquire, Infer, Sequence, Publish, Status, Archive];
}

/// <summary>
/// The sequencer's inbox: acquisition registers each frame (before anyone can work on it), inference and
/// acquisition complete them. Unbounded, but its depth is bounded by the capture rate: the sequencer
/// only moves entries into its own bounded bookkeeping.
/// </summary>
internal sealed class FrameEvents
{
    internal abstract record Event;
    internal sealed record Registered(FrameMeta Meta, long Deadline) : Event;
    internal sealed record Completed(long Id, FrameOutcome Outcome) : Event;

    private readonly Channel<Event> _channel = Channel.CreateUnbounded<Event>();

    public ChannelReader<Event> Reader => _channel.Reader;

    public void Register(FrameMeta meta, long deadline) => _channel.Writer.TryWrite(new Registered(meta, deadline));

    public void Complete(long id, FrameOutcome outcome) => _channel.Writer.TryWrite(new Completed(id, outcome));
}

/// <summary>
/// One camera's counters, written by its stages and read by the status reporter. Verdicts are counted
/// by kind when they are handed to the link, so each frame once: <see cref="Frames"/> = the verdicts +
/// <see cref="VerdictsUnpublished"/> + the frames in flight.
/// </summary>
internal sealed class PipelineCounters
{
    public long Frames, Dropped, Errors, Timeouts, LateResults, WarmingUp, Passed, Failed, Unsure;
    /// <summary>Verdicts decided but not handed to the link because it threw: lost, and counted.</summary>
    public long VerdictsUnpublished;
    /// <summary>Part ids announced that no frame was captured for, dropped beyond 1000 waiting.</summary>
    public long PartIdsDiscarded;
    /// <summary>Frames whose deadline passed in the queue, so not given to the backbone (each is answered timeout).</summary>
    public long ExpiredUnscored;
    /// <summary>Frames not started because, at the measured time per frame, they could not be answered before their deadline (each is answered timeout at once).</summary>
    public long Shed;
    /// <summary>The last problem any stage met, for the status topic.</summary>
    public volatile string? LastError;

    /// <summary>Every verdict handed to the link, of every kind.</summary>
    public long Answered => Interlocked.Read(ref Passed) + Interlocked.Read(ref Failed) + Interlocked.Read(ref Unsure) + Interlocked.Read(ref WarmingUp)
        + Interlocked.Read(ref Timeouts) + Interlocked.Read(ref Errors) + Interlocked.Read(ref Dropped);

    public void Count(VerdictKind kind)
    {
        switch (kind)
        {
            case VerdictKind.Pass: Interlocked.Increment(ref Passed); break;
            case VerdictKind.Fail: Interlocked.Increment(ref Failed); break;
            case VerdictKind.Unsure: Interlocked.Increment(ref Unsure); break;
            case VerdictKind.WarmingUp: Interlocked.Increment(ref WarmingUp); break;
            case VerdictKind.Timeout: Interlocked.Increment(ref Timeouts); break;
            case VerdictKind.Error: Interlocked.Increment(ref Errors); break;
            case VerdictKind.Dropped: Interlocked.Increment(ref Dropped); break;
        }
    }
}

/// <summary>
/// The engine as other threads may see it: published by the inference stage (which alone touches the
/// engine) after every change, read by the status reporter. Immutable, so a reader never sees half an update.
/// </summary>
internal sealed record EngineState(bool Warm, int ReservoirFrames, long Quarantined, DateTimeOffset? SnapshotSaved, string Scoring, string Views)
{
    public static readonly EngineState Empty = new(false, 0, 0, null, Core.Scoring.ScoringPath.Managed, Core.Scoring.ScoringPath.Managed);
}

/// <summary>A stage's heartbeat, for the watchdog.</summary>
internal sealed class Heartbeat
{
    private long _last = Stopwatch.GetTimestamp();

    public void Beat() => Volatile.Write(ref _last, Stopwatch.GetTimestamp());

    public bool Within(TimeSpan maxAge) => Stopwatch.GetElapsedTime(Volatile.Read(ref _last)) < maxAge;
}

/// <summary>
/// What a camera keeps across pipeline restarts (a camera setting edited, the model changed): its frame
/// ids, increasing for the life of the process and, kept beside the spool (<see cref="FrameCounter"/>),
/// across its restarts, so that a subscriber de-duplicating by frame id never confuses two parts
/// (<see cref="RunId"/>, the service's start in UTC ms, tells one run from the next); and its active
/// recipe, so that an acknowledged recipe switch is not undone by a restart.
/// </summary>
internal sealed class CameraState(long runId, string configuredRecipe, FrameCounter? frames = null)
{
    private readonly FrameCounter _frames = frames ?? new FrameCounter();
    private volatile string _recipe = configuredRecipe;

    /// <summary>The camera's recent verdicts and latest heatmap, for the live view (kept across pipeline restarts).</summary>
    public LiveFeed Feed { get; } = new();

    public long RunId => runId;

    public long Next() => _frames.Next();

    /// <summary>The first frame id of this run.</summary>
    public long FirstFrame => _frames.First;

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
