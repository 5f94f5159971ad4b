using System.Text.Json;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Verdicts;
using EdgeInspector.Mqtt;

namespace EdgeInspector.Service;

/// <summary>The topic tree: <c>&lt;prefix&gt;/&lt;line&gt;/&lt;camera&gt;/{verdict,reject,heatmap,status,command,command/ack,part,trigger,alarm}</c>.</summary>
internal sealed class Topics(string prefix, string line)
{
    public string Line => line;
    private string Base(string camera) => $"{prefix}/{line}/{camera}";
    public string Verdict(string camera) => Base(camera) + "/verdict";
    public string Reject(string camera) => Base(camera) + "/reject";
    public string Heatmap(string camera) => Base(camera) + "/heatmap";
    public string Status(string camera) => Base(camera) + "/status";
    public string Command(string camera) => Base(camera) + "/command";
    public string CommandAck(string camera) => Base(camera) + "/command/ack";
    public string Part(string camera) => Base(camera) + "/part";
    public string Trigger(string camera) => Base(camera) + "/trigger";
    public string Alarm(string camera) => Base(camera) + "/alarm";

    /// <summary>The camera's spool folder.</summary>
    public string Spool(string spoolDir, string camera) => Path.Combine(spoolDir, line, camera);

    /// <summary>The camera's engine snapshot: beside its spool folder, on the same disk.</summary>
    public string Snapshot(string spoolDir, string camera) => Spool(spoolDir, camera) + ".engine";

    /// <summary>The camera's next frame id, beside its spool folder (<see cref="FrameCounter"/>).</summary>
    public string FrameIds(string spoolDir, string camera) => Spool(spoolDir, camera) + ".frames";
}

/// <summary>The settings hot reload may swap while pipelines run, with the policy derived from them.</summary>
internal sealed class LiveSettings(InspectorSettings settings, int version, string? reloadError = null)
{
    public InspectorSettings Settings { get; } = settings;

    /// <summary>Counts applied configurations (1 = the one the service started with).</summary>
    public int Version { get; } = version;

    /// <summary>The last rejected edit's problems, shown on the status topic until a valid edit lands.</summary>
    public string? ReloadError { get; } = reloadError;

    public VerdictPolicy Policy { get; } = new(
        settings.Verdict.Threshold, settings.Verdict.UnsureBand,
        Action(settings.Verdict.Unsure), Action(settings.Verdict.WarmingUp), Action(settings.Verdict.Timeout), Action(settings.Verdict.Dropped));

    private static GateAction Action(string s) => s == "accept" ? GateAction.Accept : GateAction.Reject;

    public LiveSettings WithError(string? error) => new(Settings, Version, error);
}

/// <summary>Builds each camera's link options from the MQTT settings (one connection, one last will, one spool per camera).</summary>
internal sealed class MqttLinkOptionsFactory(MqttSettings mqtt, string host, string? password)
{
    public MqttLinkOptions For(string camera, Topics topics) => new(
        host, mqtt.Port, $"{mqtt.ClientId}-{topics.Line}-{camera}",
        mqtt.Username.Length > 0 ? mqtt.Username : null, password,
        mqtt.Tls.Enabled, mqtt.Tls.CaFile.Length > 0 ? mqtt.Tls.CaFile : null, mqtt.Tls.AllowUntrusted,
        topics.Status(camera),
        JsonSerializer.SerializeToUtf8Bytes(new OfflineMessage("offline", camera), WireJson.Default.OfflineMessage),
        [topics.Command(camera), topics.Part(camera), topics.Trigger(camera)],
        topics.Spool(mqtt.SpoolDir, camera),
        mqtt.SpoolMaxMessages, mqtt.SpoolMinFreeMb * 1024L * 1024L);
}
