using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Verdicts;
using EdgeInspector.Mqtt;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// Publish: turns decisions into the wire messages a PLC reads (verdict, reject, heatmap, command
/// acknowledgements) and hands them to the link. A link that throws costs the verdict, which is counted
/// (<see cref="PipelineCounters.VerdictsUnpublished"/>), shown on the status and logged at a bounded
/// rate; the caller goes on with the next frame.
/// </summary>
internal sealed class VerdictPublisher(
    IMessageLink link, Topics topics, string camera, string modelHash, CameraState state, Func<LiveSettings> live,
    PipelineCounters counters, StageHealth health, LatencyWindow latency, IVerdictSink[] sinks, ILogger log)
{
    private readonly LogThrottle _faultLog = new(TimeSpan.FromSeconds(10)), _refusalLog = new(TimeSpan.FromSeconds(10));

    /// <summary>
    /// The policy in force and the recipe it comes from, read together (a recipe's threshold overrides
    /// verdict.threshold; both can change by hot reload or command while frames are in flight).
    /// </summary>
    public (VerdictPolicy Policy, string Recipe) Current()
    {
        string recipe = state.Recipe;
        var l = live();
        var policy = l.Settings.Recipe(recipe)?.Threshold is { } t ? l.Policy with { Threshold = t } : l.Policy;
        return (policy, recipe);
    }

    public void Publish(FrameMeta meta, FrameOutcome o)
    {
        var (policy, recipe) = Current();
        bool reject = o.Reject ?? policy.Rejects(o.Kind);
        double latencyMs = Stopwatch.GetElapsedTime(meta.CaptureTimestamp).TotalMilliseconds;
        latency.Add(latencyMs);
        var message = new VerdictMessage(
            meta.Id, state.RunId, meta.PartId, topics.Line, camera, meta.CaptureUtc.ToUnixTimeMilliseconds(), VerdictNames.Wire(o.Kind), reject,
            float.IsFinite(o.Score) ? Math.Round(o.Score, 5) : null, float.IsFinite(o.Calibrated) ? Math.Round(o.Calibrated, 4) : null,
            o.Threshold ?? policy.Threshold, Math.Round(latencyMs, 2), o.ReferenceFrames, o.ReferenceRuns, modelHash, o.Recipe ?? recipe,
            (int)ErrorCodes.For(o.Kind, o.Cause), o.Error);
        try
        {
            link.Enqueue(new OutgoingMessage(topics.Verdict(camera), JsonSerializer.SerializeToUtf8Bytes(message, WireJson.Default.VerdictMessage)));
            // The reject topic is for the simplest PLC: "<frame id>,<1 reject | 0 accept>".
            link.Enqueue(new OutgoingMessage(topics.Reject(camera), Encoding.ASCII.GetBytes($"{meta.Id},{(reject ? 1 : 0)}")));
        }
        catch (Exception e)
        {
            // The link must not throw; if it does, the verdict is lost: counted, shown, logged.
            Interlocked.Increment(ref counters.VerdictsUnpublished);
            counters.LastError = $"publish: frame {meta.Id}: {e.Message}";
            health.Report(Stages.Publish, counters.LastError);
            if (_faultLog.Allow(out long held)) log.LogError(e, "Camera {Camera}: the verdict for frame {Frame} could not be handed to the MQTT link; lost ({Held} similar loss(es) not logged since the last)", camera, meta.Id, held);
            return;
        }
        counters.Count(o.Kind);
        foreach (var sink in sinks)
        {
            try { sink.Published(message, o.Heatmap); }
            catch (Exception e) { health.Report(Stages.Publish, $"{sink.GetType().Name}: {e.Message}"); }
        }
        // A heatmap may exist only for the archive: publish it only if heatmap.publish selects this part.
        if (o.Heatmap is { } jpeg && InspectorSettings.Selects(live().Settings.Heatmap.Publish, o.Kind.IsFlagged()))
        {
            try
            {
                link.TryEnqueueBestEffort(new OutgoingMessage(topics.Heatmap(camera), jpeg, false,
                    [new("frame_id", meta.Id.ToString(CultureInfo.InvariantCulture)), new("part_id", meta.PartId ?? ""), new("verdict", VerdictNames.Wire(o.Kind))]));
            }
            catch (Exception e)
            {
                health.Report(Stages.Publish, $"heatmap: {e.Message}");
            }
        }
        if (o.Kind is VerdictKind.Fail or VerdictKind.Error or VerdictKind.Timeout or VerdictKind.Dropped)
        {
            log.LogInformation("Camera {Camera}: frame {Frame} ({Part}) {Verdict} score {Score:0.00} reject {Reject}{Error}", camera, meta.Id, meta.PartId, VerdictNames.Wire(o.Kind), o.Calibrated, reject, o.Error is null ? "" : ": " + o.Error);
        }
    }

    /// <summary>Answers a command: applied (<paramref name="ok"/>) or refused saying why.</summary>
    public void Ack(string id, string command, bool ok, string message)
    {
        var ack = new AckMessage(id, command, ok, message, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        try
        {
            link.Enqueue(new OutgoingMessage(topics.CommandAck(camera), JsonSerializer.SerializeToUtf8Bytes(ack, WireJson.Default.AckMessage)));
        }
        catch (Exception e)
        {
            health.Report(Stages.Publish, $"command ack: {e.Message}");
            log.LogError(e, "Camera {Camera}: the acknowledgement of command {Id} could not be handed to the MQTT link", camera, id);
        }
        if (!ok && _refusalLog.Allow(out long held)) log.LogWarning("Camera {Camera}: command {Command} refused: {Message} ({Held} refusal(s) not logged since the last)", camera, command, message, held);
    }
}
