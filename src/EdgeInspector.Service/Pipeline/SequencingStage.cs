using System.Diagnostics;
using EdgeInspector.Core.Verdicts;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// Sequence: publishes verdicts in capture order, each as soon as it and every frame before it are
/// answered, or <c>timeout</c> when its deadline passes first; a result that comes later is logged as
/// late and never published twice. Its bookkeeping lives in fields, not in the loop, so a loop restarted
/// after a fault still answers every frame registered before.
/// </summary>
internal sealed class SequencingStage(string camera, FrameEvents events, VerdictPublisher publisher, Func<LiveSettings> live, PipelineCounters counters, ILogger log)
{
    private readonly VerdictSequencer<FrameOutcome> _sequencer = new();
    private readonly Dictionary<long, FrameMeta> _metas = [];
    private readonly List<(long Id, FrameOutcome? Outcome)> _released = [];
    private readonly LogThrottle _lateLog = new(TimeSpan.FromSeconds(10));
    private volatile int _pending;

    public Heartbeat Heartbeat { get; } = new();

    /// <summary>Frames registered and not yet published.</summary>
    public int Pending => _pending;

    public async Task RunAsync(CancellationToken ct)
    {
        // A frame released but not yet published when the loop failed is published first.
        PublishReleased();
        while (!ct.IsCancellationRequested)
        {
            Heartbeat.Beat();
            long now = Stopwatch.GetTimestamp();
            long next = _sequencer.NextDeadline ?? now + Stopwatch.Frequency / 2;
            var wait = TimeSpan.FromSeconds(Math.Clamp((next - now) / (double)Stopwatch.Frequency, 0.001, 0.5));
            using (var cts = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                cts.CancelAfter(wait);
                try { await events.Reader.WaitToReadAsync(cts.Token); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
            }
            while (events.Reader.TryRead(out var e))
            {
                switch (e)
                {
                    case FrameEvents.Registered r:
                        _metas[r.Meta.Id] = r.Meta;
                        _sequencer.Register(r.Meta.Id, r.Deadline);
                        break;
                    case FrameEvents.Completed c when !_sequencer.Complete(c.Id, c.Outcome):
                        Interlocked.Increment(ref counters.LateResults);
                        if (_lateLog.Allow(out long held)) log.LogWarning("Camera {Camera}: late result for frame {Frame}: {Verdict} (score {Score:0.00}); the frame was already answered 'timeout' ({Held} late result(s) not logged since the last)", camera, c.Id, VerdictNames.Wire(c.Outcome.Kind), c.Outcome.Calibrated, held);
                        break;
                }
            }
            _sequencer.Drain(Stopwatch.GetTimestamp(), _released);
            _pending = _sequencer.Pending;
            PublishReleased();
        }
    }

    private void PublishReleased()
    {
        // Taken off the list one at a time: a throw leaves only the frames not yet published on it.
        while (_released.Count > 0)
        {
            var (id, outcome) = _released[0];
            _released.RemoveAt(0);
            if (!_metas.Remove(id, out var meta)) continue;
            publisher.Publish(meta, outcome ?? new FrameOutcome { Kind = VerdictKind.Timeout, Error = $"no result within {live().Settings.Verdict.DeadlineMs} ms" });
        }
    }
}
