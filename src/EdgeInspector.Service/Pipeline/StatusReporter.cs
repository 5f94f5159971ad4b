using System.Diagnostics;
using System.Text.Json;
using EdgeInspector.Cameras;
using EdgeInspector.Mqtt;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// Status: the retained status message, every <c>mqtt.status_interval_s</c> and on demand (a config
/// reload, a stage failure). It reads only what is safe from its own thread: counters, the engine state
/// the inference stage published, the link's counters. Messages the link lost since the last status
/// are reported as a fault of the publish stage, so the status reads degraded while they are lost.
/// <c>ready</c> is the PLC's interlock: the engine is warm and the camera is streaming.
/// </summary>
internal sealed class StatusReporter(
    string camera, string modelHash, IMessageLink link, CameraState state, Func<LiveSettings> live, PipelineCounters counters,
    SourceCounters sourceCounters, StageHealth health, LatencyWindow latency, Func<EngineState> engine, Func<int> inferenceQueue,
    Func<string> cameraState, Archive archive, DriftWatch drift, ILogger log)
{
    private readonly Stopwatch _uptime = Stopwatch.StartNew();

    public async Task RunAsync(CancellationToken ct)
    {
        long lastFrames = 0, lastLost = link.Counters.Lost;
        var sw = Stopwatch.StartNew();
        while (!ct.IsCancellationRequested)
        {
            long lost = link.Counters.Lost;
            if (lost > lastLost) health.Report(Stages.Publish, $"{lost - lastLost} message(s) lost in delivery: {link.LastError}");
            lastLost = lost;
            long frames = Interlocked.Read(ref counters.Frames);
            Fps = (frames - lastFrames) / Math.Max(1e-3, sw.Elapsed.TotalSeconds);
            lastFrames = frames;
            sw.Restart();
            try
            {
                Send();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                health.Report(Stages.Status, e.Message);
                log.LogError(e, "Camera {Camera}: status could not be built", camera);
            }
            try { await Task.Delay(TimeSpan.FromSeconds(live().Settings.Mqtt.StatusIntervalS), ct); }
            catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>Frames per second over the last status period (every status, periodic or not, says this one).</summary>
    public double Fps { get; private set; }

    /// <summary>Sets the retained status now.</summary>
    public void Send() => link.SetStatus(JsonSerializer.SerializeToUtf8Bytes(Build(), WireJson.Default.StatusMessage));

    /// <summary>Sets the retained status now, logging rather than throwing (for fault paths).</summary>
    public void TrySend()
    {
        try { Send(); }
        catch (Exception e) when (e is not OperationCanceledException) { log.LogError(e, "Camera {Camera}: status could not be built", camera); }
    }

    public StatusMessage Build()
    {
        var e = engine();
        var l = live();
        var c = link.Counters;
        var (p50, p95, p99) = latency.Percentiles();
        string source = cameraState();
        var archived = archive.Status();
        return new StatusMessage(
            health.State, e.Warm && source == "streaming", source, health.Snapshot(), camera, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), Math.Round(_uptime.Elapsed.TotalSeconds), Math.Round(Fps, 2),
            Interlocked.Read(ref counters.Frames),
            new Dictionary<string, long>
            {
                ["pass"] = Interlocked.Read(ref counters.Passed), ["fail"] = Interlocked.Read(ref counters.Failed), ["unsure"] = Interlocked.Read(ref counters.Unsure),
                ["warming_up"] = Interlocked.Read(ref counters.WarmingUp), ["timeout"] = Interlocked.Read(ref counters.Timeouts),
                ["error"] = Interlocked.Read(ref counters.Errors), ["dropped"] = Interlocked.Read(ref counters.Dropped),
            },
            new LatencyStatus(p50, p95, p99),
            new QueueStatus(inferenceQueue(), c.Queued, c.Spooled, Interlocked.Read(ref counters.ExpiredUnscored), Interlocked.Read(ref counters.Shed)),
            new EngineStatus(e.Warm, e.ReservoirFrames, e.Quarantined, e.SnapshotSaved is { } saved ? Math.Round((DateTimeOffset.UtcNow - saved).TotalSeconds, 1) : null, e.Scoring, e.Views),
            new CameraCounterStatus(Interlocked.Read(ref sourceCounters.Timeouts), Interlocked.Read(ref sourceCounters.Incomplete), Interlocked.Read(ref sourceCounters.Reconnects)),
            new DeliveryStatus(c.Connected, c.Enqueued, c.Recovered, c.Delivered, c.Refused, c.SpoolOverflow, c.SpoolWriteFailed, c.SpoolCorrupt,
                c.BestEffortDropped, Interlocked.Read(ref counters.VerdictsUnpublished), Interlocked.Read(ref counters.LateResults), archived.Skipped,
                Interlocked.Read(ref counters.PartIdsDiscarded)),
            archived,
            drift.Status(),
            state.Recipe, modelHash, new ConfigStatus(l.Version, l.ReloadError), counters.LastError ?? link.LastError);
    }
}
