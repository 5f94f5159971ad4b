using System.Diagnostics;
using System.Threading.Channels;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Mqtt;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// One camera's pipeline, wired from its stages: acquire (<see cref="AcquisitionStage"/>) → bounded
/// queue with a drop policy → infer and decide (<see cref="InferenceStage"/>, <see cref="VerdictDecider"/>)
/// → sequence (<see cref="SequencingStage"/>: in order, deadlines) → publish (<see cref="VerdictPublisher"/>
/// into an <see cref="IMessageLink"/>), beside commands (<see cref="CommandHandler"/>), status
/// (<see cref="StatusReporter"/>) and the archive. Every frame that is captured gets exactly one verdict.
/// Settings that apply at once (verdict policy, heatmaps, archive) are read from <see cref="Live"/> per
/// frame; anything else is changed by replacing the pipeline.
/// </summary>
/// <remarks>
/// No stage dies quietly. Each stage loop runs under <see cref="Supervise"/>: a throw is logged at once
/// with its exception, shown on the status topic (<c>degraded</c>, the stage <c>restarting</c>) and the
/// loop restarted. A stage that fails <see cref="StageHealth.MaxRestarts"/> times within a minute is not
/// restarted: <c>onFatal</c> takes the service down for systemd to restart it.
/// </remarks>
internal sealed class CameraPipeline : IAsyncDisposable
{
    private readonly CameraSettings _camera;
    private readonly ILogger _log;
    private readonly IMessageLink _link;
    private readonly FrameInspector _inspector;
    private readonly Action<string> _onFatal;
    private readonly Channel<Work> _work;
    private readonly FrameEvents _events = new();
    private readonly Archive _archive;
    private readonly AcquisitionStage _acquire;
    private readonly InferenceStage _infer;
    private readonly SequencingStage _sequence;
    private readonly StatusReporter _status;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _stopAcquire = new();
    private readonly List<Task> _loops = [];
    private Task _acquireLoop = Task.CompletedTask;
    private LiveSettings _live;

    public readonly SourceCounters SourceCounters = new();

    /// <param name="linkFactory">Makes the camera's link, given the handler for the messages it receives.</param>
    /// <param name="onFatal">Called once when a stage has failed too often to be restarted.</param>
    /// <param name="sourceFactory">Makes the camera's source, given its counters and the PLC's triggers (for a triggered camera).</param>
    public CameraPipeline(CameraSettings camera, LiveSettings live, FrameInspector inspector, Func<SourceCounters, TriggerQueue, IFrameSource> sourceFactory,
        Func<Func<string, byte[], Task>, IMessageLink> linkFactory, Topics topics, string modelHash, CameraState state, ILogger log, Action<string> onFatal,
        IVerdictSink? metrics = null)
    {
        _camera = camera;
        _live = live;
        Feed = state.Feed;
        _log = log;
        _onFatal = onFatal;
        string name = camera.Name;
        LiveSettings Live() => this.Live;
        _work = Channel.CreateBounded<Work>(new BoundedChannelOptions(live.Settings.Engine.QueueCapacity) { SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });
        var latency = new LatencyWindow(1024);
        var partIds = new PartIdQueue(name, Counters, log);
        CommandHandler? commands = null;
        _link = linkFactory((topic, payload) => commands!.OnMessageAsync(topic, payload));
        var drift = new DriftWatch(_link, topics, name, Live, log);
        IVerdictSink[] sinks = metrics is null ? [state.Feed, drift] : [state.Feed, drift, metrics];
        var publisher = new VerdictPublisher(_link, topics, name, modelHash, state, Live, Counters, Health, latency, sinks, log);
        commands = new CommandHandler(topics, name, partIds, part => _acquire!.Trigger(part), Live, publisher);
        _archive = new Archive(() => this.Live.Settings.Archive, topics.Line, name, state.RunId, modelHash, log);
        _inspector = inspector;
        var decider = new VerdictDecider(name, inspector, publisher, _archive, state.Feed, Live);
        var triggers = new TriggerQueue();
        _acquire = new AcquisitionStage(camera, () => sourceFactory(SourceCounters, triggers), SourceCounters, Live, state, _work, _events, partIds, triggers, Counters, log);
        _infer = new InferenceStage(name, inspector, _work.Reader, _events, decider, commands, publisher, state, Live, Counters, Health, log,
            modelHash, topics.Snapshot(live.Settings.Mqtt.SpoolDir, name));
        _sequence = new SequencingStage(name, _events, publisher, Live, Counters, log);
        _status = new StatusReporter(name, modelHash, _link, state, Live, Counters, SourceCounters, Health, latency, () => _infer.Engine,
            () => _work.Reader.Count, () => _acquire.State, _archive, drift, log);
    }

    /// <summary>Settings that apply without a restart; swapped by hot reload.</summary>
    public LiveSettings Live
    {
        get => Volatile.Read(ref _live);
        set => Volatile.Write(ref _live, value);
    }

    public string Name => _camera.Name;

    public CameraSettings Camera => _camera;

    /// <summary>What the stages counted: frames, verdicts by kind, losses.</summary>
    public PipelineCounters Counters { get; } = new();

    /// <summary>The stages' health, as the status topic shows it.</summary>
    internal StageHealth Health { get; } = new(Stages.All);

    /// <summary>
    /// True when every stage loop runs and the acquire, infer and sequence loops have reported within
    /// <paramref name="maxAge"/>: the watchdog's test. A stage that threw is not moving until it runs again.
    /// </summary>
    public bool IsMoving(TimeSpan maxAge) =>
        Health.AllRunning && _acquire.Heartbeat.Within(maxAge) && _infer.Heartbeat.Within(maxAge) && _sequence.Heartbeat.Within(maxAge);

    public void Start(string? seedFolder)
    {
        var ct = _stop.Token;
        // The link loop is awaited on its own at shutdown (it drains last): it stays first in the list.
        _loops.Add(Supervise(Stages.Publish, _link.RunAsync, ct));
        string? seed = seedFolder;
        _loops.Add(Supervise(Stages.Infer, c =>
        {
            string? once = Interlocked.Exchange(ref seed, null); // seeded on the first start only
            return Task.Factory.StartNew(() => _infer.Run(once, c), c, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }, ct));
        _loops.Add(Supervise(Stages.Sequence, _sequence.RunAsync, ct));
        var acquireCt = CancellationTokenSource.CreateLinkedTokenSource(ct, _stopAcquire.Token).Token;
        _acquireLoop = Supervise(Stages.Acquire, _acquire.RunAsync, acquireCt);
        _loops.Add(_acquireLoop);
        _loops.Add(Supervise(Stages.Status, _status.RunAsync, ct));
        _loops.Add(Supervise(Stages.Archive, _archive.RunAsync, ct));
    }

    /// <summary>
    /// Runs a stage's loop; when it throws, logs it at once, shows it on the status topic and starts it
    /// again after a back-off (1, 2, 4 … 10 s), until it fails too often: then <c>onFatal</c>.
    /// </summary>
    private Task Supervise(string stage, Func<CancellationToken, Task> loop, CancellationToken ct) => Task.Run(async () =>
    {
        var delay = TimeSpan.FromSeconds(1);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await loop(ct);
                return;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                bool restart = Health.LoopFailed(stage, e);
                Counters.LastError = $"{stage}: {e.Message}";
                if (!restart)
                {
                    _log.LogCritical(e, "Camera {Camera}: the {Stage} stage failed {Count} times within {Window} s and is not restarted again; stopping the service so that its supervisor restarts it", Name, stage, StageHealth.MaxRestarts, StageHealth.Window.TotalSeconds);
                    _status.TrySend();
                    _onFatal($"camera {Name}: the {stage} stage keeps failing: {e.Message}");
                    return;
                }
                _log.LogCritical(e, "Camera {Camera}: the {Stage} stage failed: {Error}; restarting it in {Delay:0} s", Name, stage, e.Message, delay.TotalSeconds);
                _status.TrySend();
            }
            try { await Task.Delay(delay, ct); }
            catch (OperationCanceledException) { return; }
            delay = TimeSpan.FromSeconds(Math.Min(delay.TotalSeconds * 2, 10));
            Health.Running(stage);
            _log.LogWarning("Camera {Camera}: the {Stage} stage restarted", Name, stage);
        }
    }, CancellationToken.None);

    /// <summary>The status as the status topic would say it now (for HTTP and metrics).</summary>
    public StatusMessage Status() => _status.Build();

    /// <summary>The camera's recent verdicts and latest heatmap, for the live view.</summary>
    public LiveFeed Feed { get; }

    /// <summary>The camera's archive (the live view browses it).</summary>
    public Archive Archive => _archive;

    /// <summary>Pushes a status now (config reload results must not wait for the next period).</summary>
    public void StatusNow() => _status.Send();

    /// <summary>How long a stop waits for acquisition: a camera's frame timeout, with room for a reconnect attempt.</summary>
    private TimeSpan AcquisitionStopLimit => TimeSpan.FromMilliseconds(Math.Min(_camera.Gige.TimeoutMs, 25_000) + 5000);

    public async ValueTask DisposeAsync()
    {
        // Graceful stop: no new frames, then let every frame already captured be answered (scored, or
        // timed out by its deadline), then stop the rest and let the link spool what it could not send.
        // Acquisition stops first: it may still be serving a trigger the camera took (at most its timeout)
        // and it answers the triggers left waiting; only then is what it registered all there to drain.
        _stopAcquire.Cancel();
        try { await Task.WhenAny(_acquire.Stopped, _acquireLoop).WaitAsync(AcquisitionStopLimit); }
        catch (TimeoutException)
        {
            _log.LogWarning("Camera {Camera}: acquisition did not stop within {Limit} s (its camera does not answer); stopping the rest without it", Name, AcquisitionStopLimit.TotalSeconds);
        }
        var limit = Stopwatch.StartNew();
        while ((_work.Reader.Count > 0 || _sequence.Pending > 0 || _events.Reader.Count > 0) && limit.ElapsedMilliseconds < Live.Settings.Verdict.DeadlineMs + 2000)
        {
            await Task.Delay(20);
        }
        await Task.Delay(100); // let the sequencer hand the last verdicts to the link
        _link.StopWhenIdle();
        try { await Task.WhenAll(_loops[0]).WaitAsync(TimeSpan.FromSeconds(5)); }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException) { }
        _stop.Cancel();
        try { await Task.WhenAll(_loops).WaitAsync(TimeSpan.FromSeconds(15)); }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException) { }
        // The engine's native buffers go only once no loop can score on them; a loop that would not stop
        // leaves them to the process (a leak on a rare path rather than a call into freed memory).
        bool stopped = true;
        foreach (var loop in _loops) stopped &= loop.IsCompleted;
        if (stopped) _inspector.Dispose();
        await _link.DisposeAsync();
        _stopAcquire.Dispose();
        _stop.Dispose();
    }
}
