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
/// answered <c>dropped</c> at once.
/// </summary>
internal sealed class AcquisitionStage(
    CameraSettings camera, Func<IFrameSource> sourceFactory, SourceCounters sourceCounters, Func<LiveSettings> live, CameraState state,
    Channel<Work> work, FrameEvents events, PartIdQueue partIds, PipelineCounters counters, ILogger log)
{
    public Heartbeat Heartbeat { get; } = new();

    private volatile string _state = "opening";

    /// <summary>opening | streaming | lost (reconnecting) | finished (a replay that does not loop ran out).</summary>
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
                _state = "streaming";
                log.LogInformation("Camera {Camera}: {Source} open", camera.Name, source.Description);
                backoff = TimeSpan.FromMilliseconds(250);
                while (!ct.IsCancellationRequested)
                {
                    Heartbeat.Beat();
                    // An unpaced replay waits for room before it "captures": the pipeline sets the pace.
                    if (!source.IsRealTime) await work.Writer.WaitToWriteAsync(ct);
                    var readTask = source.ReadAsync(ct).AsTask();
                    // Keep the heartbeat alive while a camera legitimately waits for its trigger.
                    while (!readTask.IsCompleted)
                    {
                        await Task.WhenAny(readTask, Task.Delay(500, ct));
                        Heartbeat.Beat();
                    }
                    var frame = await readTask;
                    if (frame is null)
                    {
                        log.LogInformation("Camera {Camera}: source finished", camera.Name);
                        _state = "finished";
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
                log.LogWarning("Camera {Camera}: {Error}; reconnecting in {Delay:0.0} s", camera.Name, e.Message, backoff.TotalSeconds);
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

    /// <summary>Stamps, registers and queues one captured frame (or answers it dropped).</summary>
    internal void Admit(CapturedFrame frame)
    {
        // The source's own part id (replay: the file) wins; otherwise the next one the line announced.
        string? part = frame.PartId ?? (partIds.TryTake(out string? announced) ? announced : null);
        var meta = new FrameMeta(state.Next(), part, frame.CaptureUtc, frame.CaptureTimestamp);
        Interlocked.Increment(ref counters.Frames);
        var settings = live().Settings;
        long deadline = frame.CaptureTimestamp + (long)(settings.Verdict.DeadlineMs / 1000.0 * Stopwatch.Frequency);
        // Registered before it can be worked on: the sequencer always learns of a frame before its result.
        events.Register(meta, deadline);
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
