using System.Text.Json;
using EdgeInspector.Core.Verdicts;
using EdgeInspector.Mqtt;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// Drift alarms for one camera: told of every published verdict, it feeds the scored ones to a
/// <see cref="DriftMonitor"/> (rejected or accepted by the gate, with the calibrated score) and, when an
/// alarm rises or ends, says so: retained on <c>&lt;camera&gt;/alarm</c> while it lasts (an empty retained
/// message ends it), in the log, and on status and metrics through <see cref="Status"/>. A warm-up (first
/// start, reset, recipe switch) or an edit of the drift bounds starts a new baseline.
/// </summary>
/// <remarks>Published verdicts arrive on the publishing thread; the status is read from others: one lock.</remarks>
internal sealed class DriftWatch(IMessageLink link, Topics topics, string camera, Func<LiveSettings> live, ILogger log) : IVerdictSink
{
    private readonly Lock _gate = new();
    private DriftMonitor _monitor = New(live());

    private static DriftMonitor New(LiveSettings l) => new(l.Settings.Drift, settle: l.Settings.Engine.Options.Batch);

    public void Published(VerdictMessage v, byte[]? heatmap)
    {
        DriftReading before, after;
        lock (_gate)
        {
            before = _monitor.Reading;
            var l = live();
            if (l.Settings.Drift != _monitor.Options) _monitor = New(l);
            switch (v.Verdict)
            {
                case "warming_up":
                    if (before.Scored > 0) _monitor.Reset();
                    break;
                case "pass" or "fail" or "unsure" when v.Calibrated is { } z:
                    _monitor.Observe(v.Reject, (float)z);
                    break;
            }
            after = _monitor.Reading;
        }
        if (after.Active == before.Active && after.RejectRateAlarm == before.RejectRateAlarm && after.ScoreShiftAlarm == before.ScoreShiftAlarm) return;
        if (after.Active)
        {
            var message = new AlarmMessage(true, camera, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), v.FrameId, Kinds(after), Round(after.RejectRate), Round(after.BaselineRejectRate),
                Finite(after.AcceptedMedian), Finite(after.BaselineMedian), _monitor.Options.Window);
            link.Enqueue(new OutgoingMessage(topics.Alarm(camera), JsonSerializer.SerializeToUtf8Bytes(message, WireJson.Default.AlarmMessage), Retain: true));
            log.LogWarning("Camera {Camera}: drift alarm at frame {Frame}: {Kinds}; reject rate {Rate:P1} (baseline {BaseRate:P1}), accepted parts' median score {Median:0.00} (baseline {BaseMedian:0.00}) over the last {Window} parts",
                camera, v.FrameId, string.Join(", ", message.Kinds), after.RejectRate, after.BaselineRejectRate, after.AcceptedMedian, after.BaselineMedian, message.Window);
        }
        else
        {
            link.Enqueue(new OutgoingMessage(topics.Alarm(camera), [], Retain: true));
            log.LogInformation("Camera {Camera}: drift alarm ended at frame {Frame}", camera, v.FrameId);
        }
    }

    /// <summary>What the status topic shows of drift.</summary>
    public DriftStatus Status()
    {
        DriftReading r;
        lock (_gate) r = _monitor.Reading;
        return new DriftStatus(r.Active, Kinds(r), r.BaselineSet, Round(r.RejectRate), Round(r.BaselineRejectRate), Finite(r.AcceptedMedian), Finite(r.BaselineMedian));
    }

    private static string[] Kinds(DriftReading r) => (r.RejectRateAlarm, r.ScoreShiftAlarm) switch
    {
        (true, true) => [DriftKinds.RejectRate, DriftKinds.ScoreShift],
        (true, false) => [DriftKinds.RejectRate],
        (false, true) => [DriftKinds.ScoreShift],
        _ => [],
    };

    private static double Round(double x) => Math.Round(x, 4);

    private static double? Finite(double x) => double.IsFinite(x) ? Math.Round(x, 4) : null;
}
