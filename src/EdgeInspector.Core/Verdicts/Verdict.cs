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
