using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Verdicts;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// Acquire: opens the camera (reconnecting with back-off when it goes), stamps every frame with its id,
/// capture time and part id, registers it with the sequencer before anyone can work on it, and admits it
/// to the bounded inference queue. When the queue is full the drop policy picks the frame that is
/// answered <c>dropped</c> at once. A camera the PLC triggers takes one frame per trigger; a trigger it
/// cannot serve (the camera not streaming, or lost before the frame came) is answered at once as a verdict
/// for that part: <c>error</c>, camera lost. When the service stops, a trigger the camera already took is
/// served (its frame is on the wire) and every trigger still waiting, or coming after, is answered.
/// </summary>
internal sealed class AcquisitionStage(
    CameraSettings camera, Func<IFrameSource> sourceFactory, SourceCounters sourceCounters, Func<LiveSettings> live, CameraState state,
    Channel<Work> work, FrameEvents events, PartIdQueue partIds, TriggerQueue triggers, PipelineCounters counters, ILogger log)
{
    public Heartbeat Heartbeat { get; } = new();

    private volatile string _state = "opening";
    // Frame ids are taken and registered together: triggers are answered from the MQTT thread, frames
    // from this loop, and the sequencer needs ids registered in increasing order.
    private readonly Lock _register = new();
    // A trigger is checked against the state and queued under this lock, and the stop sets its state under
    // it before its last sweep of the queue: no trigger can be queued after that sweep and wait forever.
    private readonly Lock _gate = new();

    /// <summary>opening | streaming | lost (reconnecting) | finished (a replay that does not loop ran out) | stopped.</summary>
    public string State => _state;

    public async Task RunAsync(CancellationToken ct)
    {
        double maxBackoff = camera.Source switch { "gige" => camera.Gige.ReconnectMaxS, "video" => camera.Video.ReconnectMaxS, _ => 10 };
        var backoff = TimeSpan.FromMilliseconds(250);
        bool everOpened = false;
        while (!ct.IsCancellationRequested)
        {
            Heartbeat.Beat();
            IFrameSource source = sourceFactory();
            try
            {
                await source.OpenAsync(ct);
                if (everOpened) Interlocked.Increment(ref sourceCounters.Reconnects);
                everOpened = true;
                AnswerWaitingTriggers("it was not streaming when they came"); // a reconnected camera serves new triggers only
                _state = "streaming";
                log.LogInformation("Camera {Camera}: {Source} open", camera.Name, source.Description);
                backoff = TimeSpan.FromMilliseconds(250);
                while (!ct.IsCancellationRequested)
                {
                    Heartbeat.Beat();
                    // An unpaced replay waits for room before it "captures": the pipeline sets the pace.
                    if (!source.IsRealTime) await work.Writer.WaitToWriteAsync(ct);
                    var readTask = source.ReadAsync(ct).AsTask();
                    // Keep the heartbeat alive while a camera legitimately waits for its trigger. Not cancelled
                    // with the stop: a read serving a trigger the camera took finishes, and its part is answered.
                    while (!readTask.IsCompleted)
                    {
                        await Task.WhenAny(readTask, Task.Delay(500, CancellationToken.None));
                        Heartbeat.Beat();
                    }
                    var frame = await readTask;
                    if (frame is null)
                    {
                        log.LogInformation("Camera {Camera}: source finished", camera.Name);
                        _state = "finished";
                        AnswerWaitingTriggers("the replay has run out");
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    Admit(frame!);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                counters.LastError = $"camera: {e.Message}";
                _state = "lost";
                // The trigger the camera was serving came before those still waiting: answered first, in order.
                if (e is FrameSourceException { UnservedPart: { } part })
                    Answer(part, VerdictKind.Error, ErrorCode.CameraLost, $"trigger for part {part}: camera lost before its frame: {e.Message}");
                AnswerWaitingTriggers(e.Message);
                log.LogWarning("Camera {Camera}: {Error}; reconnecting in {Delay:0.0} s", camera.Name, e.Message, backoff.TotalSeconds);
            }
            finally
            {
                // Answered before the source is closed: closing a camera that hangs can take longer than a
                // stop waits for this stage.
                if (ct.IsCancellationRequested) StopTaking();
                await source.DisposeAsync();
            }
            try { await Task.Delay(backoff, ct); }
            catch (OperationCanceledException) { break; }
            backoff = TimeSpan.FromSeconds(Math.Min(backoff.TotalSeconds * 2, maxBackoff));
        }
        StopTaking();
    }

    /// <summary>Takes no trigger from now on, and answers those still waiting.</summary>
    private void StopTaking()
    {
        lock (_gate) _state = "stopped";
        AnswerWaitingTriggers("the camera's pipeline is stopping");
        _stopped.TrySetResult();
    }

    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Completes once the stage has stopped taking frames and triggers: every frame it captured is
    /// registered and every trigger it took is answered (the camera may still be closing).
    /// </summary>
    public Task Stopped => _stopped.Task;

    /// <summary>Stamps, registers and queues one captured frame (or answers it dropped).</summary>
    internal void Admit(CapturedFrame frame)
    {
        // The source's own part id (replay: the file) wins; otherwise the next one the line announced.
        string? part = frame.PartId ?? (partIds.TryTake(out string? announced) ? announced : null);
        var settings = live().Settings;
        // Registered before it can be worked on: the sequencer always learns of a frame before its result.
        var meta = Register(part, frame.CaptureUtc, frame.CaptureTimestamp);
        var w = new Work(meta, frame);
        if (work.Writer.TryWrite(w)) return;
        if (settings.Engine.DropPolicy == "drop_newest")
        {
            Drop(w);
            return;
        }
        // drop_oldest: the frame that waited longest is the least likely to make its deadline. (Acquisition
        // reads from the queue here too: the channel is not single-reader for that reason.)
        if (work.Reader.TryRead(out var oldest)) Drop(oldest);
        if (!work.Writer.TryWrite(w)) Drop(w);
    }

    /// <summary>A new frame id for a capture, registered with the sequencer under its deadline.</summary>
    private FrameMeta Register(string? part, DateTimeOffset captureUtc, long captureTimestamp)
    {
        lock (_register)
        {
            var meta = new FrameMeta(state.Next(), part, captureUtc, captureTimestamp);
            Interlocked.Increment(ref counters.Frames);
            events.Register(meta, meta.Deadline(live().Settings.Verdict));
            return meta;
        }
    }

    /// <summary>
    /// A trigger from the PLC for <paramref name="partId"/>: queued for the camera, or answered at once
    /// when the camera cannot take it. Null when taken; otherwise why it was refused (this camera is not
    /// triggered by the PLC), for the command acknowledgement.
    /// </summary>
    public string? Trigger(string partId)
    {
        if (!camera.PlcTriggered) return $"camera {camera.Name} is not triggered by the PLC (set {camera.Source}.trigger: plc)";
        string state;
        lock (_gate)
        {
            state = _state;
            if (state == "streaming" && triggers.TryFire(partId)) return null;
        }
        if (state != "streaming") Answer(partId, VerdictKind.Error, ErrorCode.CameraLost, $"trigger for part {partId}: the camera is {state}, not streaming");
        else Answer(partId, VerdictKind.Dropped, ErrorCode.None, $"trigger for part {partId}: {triggers.Capacity} triggers already wait for the camera");
        return null;
    }

    /// <summary>Triggers the camera will not serve now (it was lost, or ran out) are answered, not left waiting.</summary>
    private void AnswerWaitingTriggers(string why)
    {
        while (triggers.TryTake(out string partId)) Answer(partId, VerdictKind.Error, ErrorCode.CameraLost, $"trigger for part {partId}: camera lost before its frame: {why}");
    }

    /// <summary>A verdict for a part no frame was captured for: registered and completed at once.</summary>
    private void Answer(string partId, VerdictKind kind, ErrorCode cause, string error)
    {
        var meta = Register(partId, DateTimeOffset.UtcNow, Stopwatch.GetTimestamp());
        events.Complete(meta.Id, new FrameOutcome { Kind = kind, Cause = cause, Error = error });
    }

    private void Drop(Work w)
    {
        w.Frame.Dispose();
        events.Complete(w.Meta.Id, new FrameOutcome { Kind = VerdictKind.Dropped, Error = "queue full: the backbone could not keep up" });
    }
}

/// <summary>
/// Part ids the line announces on <c>&lt;camera&gt;/part</c>, one message per part, before the part
/// reaches the camera: each goes to the next frame captured. Bounded: a line that announces parts no
/// camera sees would otherwise grow it forever; what it discards is counted and logged at a bounded rate.
/// </summary>
internal sealed class PartIdQueue(string camera, PipelineCounters counters, ILogger log)
{
    public const int Capacity = 1000;
    private readonly ConcurrentQueue<string> _ids = new();
    private readonly LogThrottle _log = new(TimeSpan.FromSeconds(10));

    public void Announce(string partId)
    {
        _ids.Enqueue(partId);
        long stale = 0;
        string? oldest = null;
        while (_ids.Count > Capacity && _ids.TryDequeue(out string? s))
        {
            stale++;
            oldest = s;
        }
        if (stale == 0) return;
        long total = Interlocked.Add(ref counters.PartIdsDiscarded, stale);
        counters.LastError = $"part id '{oldest}' announced but no frame captured for it (more than {Capacity} waiting)";
        if (_log.Allow(out long held)) log.LogWarning("Camera {Camera}: {Error}; {Total} part id(s) discarded so far ({Held} such warning(s) not logged since the last)", camera, counters.LastError, total, held);
    }

    public bool TryTake(out string? partId) => _ids.TryDequeue(out partId);
}
