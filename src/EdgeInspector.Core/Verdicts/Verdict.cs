namespace EdgeInspector.Core.Verdicts;

/// <summary>What the service answers for a part. Every frame gets exactly one.</summary>
public enum VerdictKind
{
    /// <summary>Scored below the unsure band: a good part.</summary>
    Pass,
    /// <summary>Scored above the unsure band: a defective part.</summary>
    Fail,
    /// <summary>Scored within the band around the threshold.</summary>
    Unsure,
    /// <summary>Answered before the coreset existed.</summary>
    WarmingUp,
    /// <summary>No result within the deadline; the fail-safe applies.</summary>
    Timeout,
    /// <summary>The frame could not be processed (corrupt image, backbone failure).</summary>
    Error,
    /// <summary>The frame was dropped by the queue policy because the pipeline could not keep up.</summary>
    Dropped,
}

/// <summary>What the reject gate is told to do with a part that did not simply pass or fail.</summary>
public enum GateAction
{
    /// <summary>Divert the part.</summary>
    Reject,
    /// <summary>Let the part through.</summary>
    Accept,
}

/// <summary>Questions about a verdict that more than one place asks.</summary>
public static class VerdictKinds
{
    /// <summary>Fail or unsure: the parts a person should look at (heatmaps and archive "fails").</summary>
    public static bool IsFlagged(this VerdictKind kind) => kind is VerdictKind.Fail or VerdictKind.Unsure;
}

/// <summary>Wire names of verdicts, as published on MQTT and written in logs.</summary>
public static class VerdictNames
{
    /// <summary>The snake_case name a PLC or dashboard matches on.</summary>
    public static string Wire(VerdictKind kind) => kind switch
    {
        VerdictKind.Pass => "pass",
        VerdictKind.Fail => "fail",
        VerdictKind.Unsure => "unsure",
        VerdictKind.WarmingUp => "warming_up",
        VerdictKind.Timeout => "timeout",
        VerdictKind.Error => "error",
        VerdictKind.Dropped => "dropped",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };
}

/// <summary>
/// Why a verdict is not a scored one: the numeric <c>error_code</c> on every verdict, from one table a PLC
/// programmer matches on (README, "The PLC contract"). Scored verdicts (pass, fail, unsure) carry <see cref="None"/>.
/// The numbers are part of the wire contract: never renumber, only add.
/// </summary>
public enum ErrorCode
{
    /// <summary>Scored: pass, fail or unsure.</summary>
    None = 0,
    /// <summary>The engine has not learned enough yet (verdict <c>warming_up</c>).</summary>
    NotWarm = 1,
    /// <summary>No result within the deadline (verdict <c>timeout</c>).</summary>
    Timeout = 2,
    /// <summary>Dropped by the queue policy under overload (verdict <c>dropped</c>).</summary>
    Dropped = 3,
    /// <summary>
    /// The frame could not be decoded: corrupt, truncated, wrong format; or a PLC-triggered frame came
    /// incomplete or not at all within the camera's timeout (verdict <c>error</c>).
    /// </summary>
    DecodeFailed = 4,
    /// <summary>The backbone or the engine failed on the frame (verdict <c>error</c>).</summary>
    ModelFault = 5,
    /// <summary>A trigger came while the camera was not streaming (verdict <c>error</c>).</summary>
    CameraLost = 6,
}

/// <summary>The code each verdict kind carries.</summary>
public static class ErrorCodes
{
    /// <summary>The code for a verdict of <paramref name="kind"/>; an error's own cause (<paramref name="cause"/>) when it has one, else a model fault.</summary>
    public static ErrorCode For(VerdictKind kind, ErrorCode cause = ErrorCode.None) => kind switch
    {
        VerdictKind.Pass or VerdictKind.Fail or VerdictKind.Unsure => ErrorCode.None,
        VerdictKind.WarmingUp => ErrorCode.NotWarm,
        VerdictKind.Timeout => ErrorCode.Timeout,
        VerdictKind.Dropped => ErrorCode.Dropped,
        _ => cause == ErrorCode.None ? ErrorCode.ModelFault : cause,
    };
}
