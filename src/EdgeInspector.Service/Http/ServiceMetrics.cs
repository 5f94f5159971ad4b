using EdgeInspector.Core.Verdicts;
using Prometheus;

namespace EdgeInspector.Service;

/// <summary>
/// The Prometheus metrics on <c>/metrics</c>, in a registry of the service's own (no process-wide
/// state). Verdicts and latency are counted as they are published (<see cref="IVerdictSink"/>), so they
/// only ever go up, also when a pipeline is restarted by a config edit; the gauges and the pipeline's own
/// counters are read from the pipelines just before each scrape.
/// </summary>
internal sealed class ServiceMetrics
{
    // Capture to publish, in seconds: a verdict is due within the deadline (2 s by default).
    private static readonly double[] LatencyBuckets = [0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10];

    private readonly Counter _verdicts, _dropped, _timeouts, _archiveSkipped, _archiveEvicted, _messagesLost;
    private readonly Histogram _latency;
    private readonly Gauge _queue, _spool, _connected, _fps, _reservoir, _warm, _ready, _configVersion, _state, _drift;
    // Pipelines restart with fresh counters: what each camera's last reading was, to add only the growth.
    private readonly Dictionary<(string, Counter), long> _last = [];

    public ServiceMetrics()
    {
        var f = Metrics.WithCustomRegistry(Registry);
        _verdicts = f.CreateCounter("edgeinspector_verdicts_total", "Verdicts published, by camera and verdict (pass, fail, unsure, warming_up, timeout, error, dropped).", ["camera", "verdict"]);
        _latency = f.CreateHistogram("edgeinspector_latency_seconds", "Capture-to-publish latency of each verdict.", ["camera"], new HistogramConfiguration { Buckets = LatencyBuckets });
        _dropped = f.CreateCounter("edgeinspector_frames_dropped_total", "Frames dropped by the queue policy because the backbone could not keep up.", ["camera"]);
        _timeouts = f.CreateCounter("edgeinspector_frames_timed_out_total", "Frames answered timeout: no result within verdict.deadline_ms.", ["camera"]);
        _queue = f.CreateGauge("edgeinspector_queue_depth", "Items waiting: frames before the backbone (inference), messages before the broker (outgoing).", ["camera", "queue"]);
        _spool = f.CreateGauge("edgeinspector_spool_messages", "Messages in the spool on disk, waiting for the broker.", ["camera"]);
        _connected = f.CreateGauge("edgeinspector_broker_connected", "1 while the camera's MQTT connection is up.", ["camera"]);
        _messagesLost = f.CreateCounter("edgeinspector_messages_lost_total", "Reliable messages lost: refused by the broker, spool overflow, spool write failures, corrupt spool files.", ["camera"]);
        _fps = f.CreateGauge("edgeinspector_frames_per_second", "Frames captured per second over the last status period.", ["camera"]);
        _reservoir = f.CreateGauge("edgeinspector_reservoir_frames", "Frames in the engine's reservoir of recent good parts.", ["camera"]);
        _warm = f.CreateGauge("edgeinspector_engine_warm", "1 once the engine scores frames (0 while it warms up).", ["camera"]);
        _ready = f.CreateGauge("edgeinspector_ready", "1 while the camera is ready for the PLC: the engine warm and the camera streaming.", ["camera"]);
        _state = f.CreateGauge("edgeinspector_pipeline_state", "The pipeline's state: 1 for the one it is in (online, degraded, failed).", ["camera", "state"]);
        _drift = f.CreateGauge("edgeinspector_drift_alarm", "1 while a drift alarm is raised, by kind (reject_rate, score_shift).", ["camera", "kind"]);
        _archiveSkipped = f.CreateCounter("edgeinspector_archive_skipped_total", "Archive records not written: queue full, disk below archive.min_free_mb, write errors.", ["camera"]);
        _archiveEvicted = f.CreateCounter("edgeinspector_archive_evicted_total", "Archive records deleted to stay within archive.max_files and archive.max_bytes.", ["camera"]);
        _configVersion = f.CreateGauge("edgeinspector_config_version", "Configurations applied since the start (1: the one it started with).");

        // The process as the runtime sees it: resident memory, processor time, collections by generation
        // (prometheus-net's DotNetStats), and what the blocking collector cost and why. A line that slows
        // or grows over days shows it here before its verdicts do.
        DotNetStats.Register(Registry);
        var pause = f.CreateCounter("dotnet_gc_pause_seconds_total", "Time the garbage collector held every managed thread since the start (GC.GetTotalPauseDuration).");
        var allocated = f.CreateCounter("dotnet_allocated_bytes_total", "Bytes allocated on the managed heap since the start (GC.GetTotalAllocatedBytes).");
        Registry.AddBeforeCollectCallback(() =>
        {
            pause.IncTo(GC.GetTotalPauseDuration().TotalSeconds);
            allocated.IncTo(GC.GetTotalAllocatedBytes());
        });
    }

    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    /// <summary>The sink a camera's publisher tells of each verdict.</summary>
    public IVerdictSink For(string camera) => new Sink(this, camera);

    /// <remarks>
    /// The camera's series are looked up once, here, not per verdict; created at once, so that a camera's
    /// losses read 0 before the first one rather than missing.
    /// </remarks>
    private sealed class Sink(ServiceMetrics m, string camera) : IVerdictSink
    {
        private readonly Histogram.Child _latency = m._latency.WithLabels(camera);
        private readonly Counter.Child _dropped = m._dropped.WithLabels(camera), _timeouts = m._timeouts.WithLabels(camera);

        public void Published(VerdictMessage v, byte[]? heatmap)
        {
            m._verdicts.WithLabels(camera, v.Verdict).Inc();
            _latency.Observe(v.LatencyMs / 1000.0);
            if (v.Verdict == "dropped") _dropped.Inc();
            else if (v.Verdict == "timeout") _timeouts.Inc();
        }
    }

    /// <summary>Sets the gauges from the pipelines' status (called before each scrape).</summary>
    public void Update(int configVersion, IEnumerable<StatusMessage> cameras)
    {
        _configVersion.Set(configVersion);
        lock (_last)
        {
            foreach (var s in cameras)
            {
                string c = s.Camera;
                _queue.WithLabels(c, "inference").Set(s.Queues.Inference);
                _queue.WithLabels(c, "outgoing").Set(s.Queues.Outgoing);
                _spool.WithLabels(c).Set(s.Queues.Spool);
                _connected.WithLabels(c).Set(s.Delivery.Connected ? 1 : 0);
                _fps.WithLabels(c).Set(s.Fps);
                _reservoir.WithLabels(c).Set(s.Engine.ReservoirFrames);
                _warm.WithLabels(c).Set(s.Engine.Warm ? 1 : 0);
                _ready.WithLabels(c).Set(s.Ready ? 1 : 0);
                foreach (string st in (string[])["online", "degraded", "failed"]) _state.WithLabels(c, st).Set(s.State == st ? 1 : 0);
                foreach (string kind in (string[])[DriftKinds.RejectRate, DriftKinds.ScoreShift]) _drift.WithLabels(c, kind).Set(s.Drift.Alarms.Contains(kind) ? 1 : 0);
                Grow(c, _archiveSkipped, s.Archive.Skipped);
                Grow(c, _archiveEvicted, s.Archive.Evicted);
                Grow(c, _messagesLost, s.Delivery.Refused + s.Delivery.SpoolOverflow + s.Delivery.SpoolWriteFailed + s.Delivery.SpoolCorrupt);
            }
        }
    }

    private void Grow(string camera, Counter counter, long now)
    {
        long last = _last.GetValueOrDefault((camera, counter));
        // A lower reading is a restarted pipeline counting from 0 again: all of it is new.
        counter.WithLabels(camera).Inc(now >= last ? now - last : now);
        _last[(camera, counter)] = now;
    }
}
