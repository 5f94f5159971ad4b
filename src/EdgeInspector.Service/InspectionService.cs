using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Inference.Onnx;
using EdgeInspector.Mqtt;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>The configuration file the service runs from, and its first valid reading.</summary>
internal sealed record ConfigFile(string Path, InspectorSettings Settings);

/// <summary>
/// The supervisor: loads the backbone (and warms it up) before the host reports ready, starts the embedded
/// broker when no broker is configured, runs one pipeline per camera, and watches the configuration file.
/// A valid edit is applied with the least disruption: verdict policy, heatmaps, archive and recipes at
/// once; a camera's own settings by restarting that camera's pipeline; model, engine or MQTT settings by
/// restarting the pipelines (a new model is loaded and probed before the old one is let go). An invalid
/// edit is logged and shown on every status topic while the last good configuration keeps running.
/// </summary>
internal sealed class InspectionService(ConfigFile config, ILoggerFactory loggers, IHostApplicationLifetime lifetime, ServiceMetrics metrics) : IHostedService
{
    /// <summary>The process's exit code: 70 (EX_SOFTWARE) once a pipeline stage failed beyond restarting, so that systemd (Restart=on-failure) starts it afresh.</summary>
    public int ExitCode { get; private set; }

    private readonly ILogger _log = loggers.CreateLogger("EdgeInspector");
    // Changed by the config watcher, read by the systemd watchdog's thread.
    private readonly ConcurrentDictionary<string, CameraPipeline> _pipelines = [];
    private readonly CancellationTokenSource _stop = new();
    private LiveSettings _live = new(config.Settings, 1);
    private SharedBackbone? _backbone;
    private EmbeddedBroker? _broker;
    private Task _watch = Task.CompletedTask;
    private long _watchBeat = Stopwatch.GetTimestamp();
    private readonly Dictionary<string, CameraState> _cameras = [];
    private readonly long _runId = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var s = _live.Settings;
        _log.LogInformation("EdgeInspector starting from {Config}: line {Line}, {Cameras} camera(s)", config.Path, s.Line, s.Cameras.Length);
        if (s.Mqtt.Host.Length == 0) _broker = await StartBroker(s.Mqtt);
        _backbone = LoadBackbone(s.Model);
        if (Preflight.EngineMemory(s, _backbone.Model.Layout) is { } memory) throw new ConfigException([new ConfigError(config.Path, 0, 0, "engine.memory_mb", memory)]);
        LogEngineMemory(s);
        Prime(_backbone, s.Engine);
        foreach (var cam in s.Cameras) StartPipeline(cam, _live);
        _watch = Task.Run(() => WatchLoop(_stop.Token));
    }

    private SharedBackbone LoadBackbone(ModelSettings m)
    {
        var sw = Stopwatch.StartNew();
        var model = new OnnxBackbone(SharedBackbone.OptionsFrom(m), loggers.CreateLogger("Backbone"));
        _log.LogInformation("Model {Path} loaded and probed in {Ms:0} ms on {Provider}: grid {H}×{W}, {Views} views, sha256 {Hash}",
            m.Path, sw.Elapsed.TotalMilliseconds, model.ExecutionProvider, model.Layout.GridHeight, model.Layout.GridWidth, model.Layout.Views.Count, model.ModelHash[..12]);
        return new SharedBackbone(model);
    }

    private void LogEngineMemory(InspectorSettings s) =>
        _log.LogInformation("Each camera's engine holds at most {Mb} MB of what it learns ({Tiles} tile position(s); engine.memory_mb {Limit}); up to {Waiting} frame(s) arriving while its warm-up batch is scored wait to teach it, within what is left",
            Preflight.Mb(Preflight.EngineBound(s, _backbone!.Model.Layout)), s.Engine.Tiles.Count, s.Engine.MemoryMb, Preflight.WarmupBacklog(s, _backbone!.Model.Layout));

    /// <summary>The backbone's first calls, before any camera starts (see <see cref="FrameInspector.Prime"/>).</summary>
    private void Prime(SharedBackbone backbone, EngineSettings engine)
    {
        var sw = Stopwatch.StartNew();
        new FrameInspector(backbone, engine).Prime(engine.InferenceBatch, PrimingRounds);
        _log.LogInformation("Backbone primed in {Ms:0} ms ({Rounds} round(s) alone and in a batch of {Batch})", sw.Elapsed.TotalMilliseconds, PrimingRounds, engine.InferenceBatch);
    }

    private const int PrimingRounds = 2;

    private void StartPipeline(CameraSettings cam, LiveSettings live)
    {
        var s = live.Settings;
        var logger = loggers.CreateLogger($"Camera.{cam.Name}");
        Func<SourceCounters, TriggerQueue, IFrameSource> source = cam.Source switch
        {
            "gige" => (counters, triggers) => new AravisSource(new GigeOptions(cam.Gige.Camera, cam.Gige.ExposureUs, cam.Gige.GainDb, cam.Gige.PixelFormat, cam.Gige.Trigger, cam.Gige.TriggerLine, cam.Gige.FrameRate, cam.Gige.TimeoutMs), counters, logger,
                cam.PlcTriggered ? triggers : null),
            "video" => (_, _) => new VideoCaptureSource(cam.Video.Uri),
            _ => (_, triggers) => new FolderReplaySource(cam.Replay.Folder, cam.Replay.Fps, cam.Replay.Loop, cam.Replay.Order == "shuffle" ? cam.Replay.Seed : null,
                cam.PlcTriggered ? triggers : null),
        };
        var links = new MqttLinkOptionsFactory(s.Mqtt, s.Mqtt.Host.Length == 0 ? EmbeddedHost(s.Mqtt) : s.Mqtt.Host, ConfigLoader.Password(s.Mqtt));
        var topics = new Topics(s.Mqtt.Prefix, s.Line);
        var state = State(cam, () => new FrameCounter(topics.FrameIds(s.Mqtt.SpoolDir, cam.Name), logger));
        var pipeline = new CameraPipeline(cam, live, new FrameInspector(_backbone!, s.Engine, cam.Roi), source, handler => new MqttLink(links.For(cam.Name, topics), handler, logger),
            topics, _backbone!.Model.ModelHash, state, logger, Fatal, metrics.For(cam.Name));
        pipeline.Start(s.KnownGoodFolder(state.Recipe));
        _pipelines[cam.Name] = pipeline;
    }

    private Task<EmbeddedBroker> StartBroker(MqttSettings m) =>
        EmbeddedBroker.StartAsync(System.Net.IPAddress.Parse(m.Bind), m.Port, m.Username.Length > 0 ? m.Username : null, ConfigLoader.Password(m), _log);

    /// <summary>Where the service's own links reach its embedded broker: the bound address, or loopback when it is bound to every interface.</summary>
    private static string EmbeddedHost(MqttSettings m)
    {
        var bind = System.Net.IPAddress.Parse(m.Bind);
        if (bind.Equals(System.Net.IPAddress.Any)) return "127.0.0.1";
        if (bind.Equals(System.Net.IPAddress.IPv6Any)) return "::1";
        return bind.ToString();
    }

    private void Fatal(string reason)
    {
        _log.LogCritical("Stopping: {Reason}. Exit code 70 asks the supervisor (systemd Restart=on-failure) for a fresh start", reason);
        ExitCode = 70;
        lifetime.StopApplication();
    }

    private CameraState State(CameraSettings cam, Func<FrameCounter> frames)
    {
        if (_cameras.TryGetValue(cam.Name, out var state)) state.Configure(cam.Recipe);
        else
        {
            _cameras[cam.Name] = state = new CameraState(_runId, cam.Recipe, frames());
            if (state.FirstFrame > 1) _log.LogInformation("Camera {Camera}: run {Run} numbers its frames from {First}, after the last run's", cam.Name, _runId, state.FirstFrame);
        }
        return state;
    }

    private async Task StopPipeline(string name)
    {
        if (_pipelines.TryRemove(name, out var p)) await p.DisposeAsync();
    }

    /// <summary>The running pipelines, by camera name.</summary>
    public IReadOnlyList<CameraPipeline> Pipelines => [.. _pipelines.Values.OrderBy(p => p.Name, StringComparer.Ordinal)];

    /// <summary>Whether a backbone is loaded and probed.</summary>
    public bool ModelLoaded => Volatile.Read(ref _backbone) is not null;

    /// <summary>The configuration version in force (1: the one the service started with).</summary>
    public int ConfigVersion => _live.Version;

    /// <summary>True when the config watcher and every pipeline stage have reported within <paramref name="maxAge"/>.</summary>
    public bool IsMoving(TimeSpan maxAge)
    {
        if (Stopwatch.GetElapsedTime(Volatile.Read(ref _watchBeat)) > maxAge) return false;
        foreach (var p in _pipelines.Values)
        {
            if (!p.IsMoving(maxAge)) return false;
        }
        return true;
    }

    private async Task WatchLoop(CancellationToken ct)
    {
        string stamp = Stamp(config.Path);
        string? text = ReadText(config.Path);
        while (!ct.IsCancellationRequested)
        {
            Volatile.Write(ref _watchBeat, Stopwatch.GetTimestamp());
            try { await Task.Delay(1000, ct); }
            catch (OperationCanceledException) { break; }
            try
            {
                // Each second costs a stat; the file is read only when its time or size moved.
                string newStamp = Stamp(config.Path);
                if (newStamp == stamp) continue;
                stamp = newStamp;
                string? newText = ReadText(config.Path);
                if (newText == text) continue;
                text = newText;
                await ReloadAsync();
            }
            catch (Exception e)
            {
                _log.LogError(e, "Configuration reload failed; the last good configuration keeps running");
            }
        }
    }

    private static string Stamp(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? $"{info.LastWriteTimeUtc.Ticks}:{info.Length}" : "missing";
    }

    private static string? ReadText(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    private async Task ReloadAsync()
    {
        InspectorSettings next;
        try
        {
            next = ConfigLoader.Load(config.Path);
        }
        catch (ConfigException e)
        {
            _log.LogError("Configuration edit rejected; the last good configuration (version {Version}) keeps running:{NewLine}{Errors}", _live.Version, Environment.NewLine, string.Join(Environment.NewLine, e.Errors));
            SetLive(_live.WithError(string.Join("; ", e.Errors)));
            return;
        }
        var old = _live.Settings;
        // A save cut short (a full disk, an editor that died, a copy that stopped) ends at a section
        // boundary and still parses: every section after the cut would silently take its defaults, and
        // with mqtt among them the PLC's broker would be swapped for the embedded one. An edit that drops
        // whole sections is refused; a section returns to its defaults on purpose as `name: {}`.
        var dropped = old.Sections.Where(x => !next.Sections.Contains(x)).ToArray();
        if (dropped.Length > 0)
        {
            string error = $"{config.Path}: the edit drops the section(s) {string.Join(", ", dropped)} that the running configuration has (a truncated save?); " +
                $"put them back, or write `{dropped[0]}: {{}}` to return one to its defaults on purpose";
            _log.LogError("Configuration edit rejected; the last good configuration (version {Version}) keeps running: {Error}", _live.Version, error);
            SetLive(_live.WithError(error));
            return;
        }
        var live = new LiveSettings(next, _live.Version + 1);
        if (!Same(old.Logging, next.Logging)) _log.LogWarning("logging settings changed: they take effect when the service restarts");
        if (!Same(old.Http, next.Http)) _log.LogWarning("http settings changed: they take effect when the service restarts");
        bool modelChanged = !Same(old.Model, next.Model);
        bool restartAll = modelChanged || !Same(old.Engine, next.Engine) || !Same(old.Mqtt, next.Mqtt) || old.Line != next.Line;
        SharedBackbone? fresh = null;
        if (modelChanged)
        {
            // Loaded and probed before anything stops: a bad model leaves the running one in place.
            try
            {
                fresh = LoadBackbone(next.Model);
            }
            catch (BackboneException e)
            {
                _log.LogError("Configuration edit rejected: {Error}; the last good configuration keeps running", e.Message);
                SetLive(_live.WithError(e.Message));
                return;
            }
        }
        // Checked before anything stops: an engine that could outgrow its memory leaves the running one in place.
        if (Preflight.EngineMemory(next, (fresh ?? _backbone!).Model.Layout) is { } memory)
        {
            fresh?.Dispose();
            string error = $"{config.Path}: engine.memory_mb: {memory}";
            _log.LogError("Configuration edit rejected; the last good configuration (version {Version}) keeps running: {Error}", _live.Version, error);
            SetLive(_live.WithError(error));
            return;
        }
        if (restartAll)
        {
            foreach (string name in _pipelines.Keys) await StopPipeline(name);
        }
        if (fresh is not null)
        {
            _backbone?.Dispose();
            _backbone = fresh;
        }
        // The embedded broker follows mqtt.host/port: started, moved or stopped with the pipelines down.
        if (old.Mqtt.Host != next.Mqtt.Host || old.Mqtt.Port != next.Mqtt.Port || old.Mqtt.Bind != next.Mqtt.Bind
            || old.Mqtt.Username != next.Mqtt.Username || ConfigLoader.Password(old.Mqtt) != ConfigLoader.Password(next.Mqtt))
        {
            if (_broker is not null)
            {
                await _broker.DisposeAsync();
                _broker = null;
            }
            try
            {
                if (next.Mqtt.Host.Length == 0) _broker = await StartBroker(next.Mqtt);
            }
            catch (InvalidOperationException e)
            {
                // The pipelines still start: they spool verdicts until a broker answers on that port.
                _log.LogError("{Error}", e.Message);
                live = live.WithError(e.Message);
            }
        }
        _live = live;
        var wanted = next.Cameras.ToDictionary(c => c.Name);
        foreach (string name in _pipelines.Keys)
        {
            if (!wanted.TryGetValue(name, out var cam) || !Same(cam, _pipelines[name].Camera))
            {
                _log.LogInformation("Camera {Camera}: settings changed, restarting its pipeline", name);
                await StopPipeline(name);
            }
        }
        foreach (var cam in next.Cameras)
        {
            if (!_pipelines.ContainsKey(cam.Name)) StartPipeline(cam, live);
        }
        SetLive(live);
        _log.LogInformation("Configuration version {Version} applied{Scope}", live.Version, restartAll ? " (pipelines restarted)" : "");
    }

    private void SetLive(LiveSettings live)
    {
        _live = live;
        foreach (var p in _pipelines.Values)
        {
            p.Live = live;
            p.StatusNow();
        }
    }

    private static bool Same<T>(T a, T b) => JsonSerializer.Serialize(a) == JsonSerializer.Serialize(b);

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stop.Cancel();
        await _watch;
        await Task.WhenAll(_pipelines.Values.Select(p => p.DisposeAsync().AsTask()));
        _pipelines.Clear();
        _backbone?.Dispose();
        if (_broker is not null) await _broker.DisposeAsync();
        _log.LogInformation("EdgeInspector stopped");
    }
}
