using System.Text.Json.Serialization;

namespace EdgeInspector.Service;

// The wire format: every message the service publishes or archives, as typed records serialised by
// System.Text.Json's source generator (no reflection at run time; snake_case names; nulls written, so a
// subscriber always finds every field). Field order is the order a reader meets them in.

/// <summary>One frame's verdict: the <c>verdict</c> topic.</summary>
internal sealed record VerdictMessage(
    long FrameId, long RunId, string? PartId, string Line, string Camera, long TimestampMs, string Verdict, bool Reject,
    double? Score, double? Calibrated, double Threshold, double LatencyMs, long[]? ReferenceFrames,
    ReferenceRun[]? ReferenceRuns, string ModelHash, string Recipe, int ErrorCode, string? Error);

/// <summary>The answer to a message on the command topic.</summary>
internal sealed record AckMessage(string Id, string Command, bool Ok, string Message, long TimestampMs);

/// <summary>An archived verdict: what the quality engineer reads beside the frame and its heatmap.</summary>
internal sealed record ArchiveRecord(
    long FrameId, long RunId, string? PartId, string Line, string Camera, long TimestampMs, string Verdict, bool Reject, float? Score, float? Calibrated,
    double? Threshold, string? Recipe, long[]? ReferenceFrames, ReferenceRun[]? ReferenceRuns, string ModelHash);

/// <summary>
/// The retained status a broker keeps for a camera. <c>ready</c> is the PLC's interlock: the engine is
/// warm and the camera is streaming (<c>camera_state</c>: opening, streaming, lost, finished).
/// </summary>
internal sealed record StatusMessage(
    string State, bool Ready, string CameraState, Dictionary<string, StageStatus> Stages, string Camera, long TimestampMs, double UptimeS, double Fps, long Frames,
    Dictionary<string, long> Verdicts, LatencyStatus LatencyMs, QueueStatus Queues, EngineStatus Engine, CameraCounterStatus CameraCounters,
    DeliveryStatus Delivery, ArchiveStatus Archive, DriftStatus Drift, string Recipe, string ModelHash, ConfigStatus Config, string? LastError);

/// <summary>A drift alarm, retained on <c>&lt;camera&gt;/alarm</c> while it lasts: which statistics moved, and from where to where.</summary>
internal sealed record AlarmMessage(
    bool Active, string Camera, long TimestampMs, long FrameId, string[] Kinds, double RejectRate, double BaselineRejectRate,
    double? AcceptedMedian, double? BaselineMedian, int Window);

/// <summary>Drift on the status topic: the alarms raised, and the window against its baseline.</summary>
internal sealed record DriftStatus(
    bool Active, string[] Alarms, bool BaselineSet, double RejectRate, double BaselineRejectRate, double? AcceptedMedian, double? BaselineMedian);

/// <summary>The status when the camera's link is gone: said on a clean stop, and the broker's last will otherwise.</summary>
internal sealed record OfflineMessage(string State, string Camera);

/// <summary>A stage on the status topic: running, restarting or failed, and its faults.</summary>
internal sealed record StageStatus(string State, long Faults, string? LastError, double? LastFaultSAgo);

internal sealed record LatencyStatus(double P50, double P95, double P99);

/// <summary>Depths now (frames before the backbone, messages before the broker and in the spool), and frames that expired in the inference queue so far (answered timeout, not scored).</summary>
internal sealed record QueueStatus(long Inference, long Outgoing, long Spool, long Expired, long Shed);

/// <summary>The engine: warm or not, the reservoir's frames, the frames quarantined, when its learned state was last saved, and where its reservoir scoring and its views run (managed or onnx).</summary>
internal sealed record EngineStatus(bool Warm, int ReservoirFrames, long Quarantined, double? SnapshotSavedSAgo, string Scoring, string Views);

internal sealed record CameraCounterStatus(long Timeouts, long IncompleteBuffers, long Reconnects);

/// <summary>
/// Every message the link was given and what became of it: enqueued + recovered = published + queued +
/// spool + refused + spool_overflow + spool_write_failed + spool_corrupt; beside them the other losses.
/// </summary>
internal sealed record DeliveryStatus(
    bool Connected, long Enqueued, long Recovered, long Published, long Refused, long SpoolOverflow, long SpoolWriteFailed,
    long SpoolCorrupt, long HeatmapsDropped, long VerdictsUnpublished, long LateResults, long ArchiveSkipped, long PartIdsDiscarded);

internal sealed record ConfigStatus(int Version, string? Error);

/// <summary>The camera's archive: records and bytes on disk now, records skipped and evicted since the start.</summary>
internal sealed record ArchiveStatus(long Records, long Bytes, long Skipped, long Evicted);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(VerdictMessage))]
[JsonSerializable(typeof(AckMessage))]
[JsonSerializable(typeof(ArchiveRecord))]
[JsonSerializable(typeof(StatusMessage))]
[JsonSerializable(typeof(OfflineMessage))]
[JsonSerializable(typeof(AlarmMessage))]
internal sealed partial class WireJson : JsonSerializerContext;
