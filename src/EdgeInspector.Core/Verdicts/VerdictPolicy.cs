namespace EdgeInspector.Core.Verdicts;

/// <summary>
/// Turns a calibrated score into a verdict and a gate decision. Thresholds live on the calibrated
/// (robust z) scale, which does not depend on which frames share a batch, so a value set today still
/// means the same thing after the coreset has moved.
/// </summary>
/// <param name="Threshold">Calibrated score at and above which a part fails.</param>
/// <param name="UnsureBand">Half-width of the band around the threshold answered <see cref="VerdictKind.Unsure"/>; 0 turns it off.</param>
/// <param name="Unsure">Gate action for unsure parts.</param>
/// <param name="WarmingUp">Gate action while the coreset does not exist yet.</param>
/// <param name="Timeout">Fail-safe for parts not answered within the deadline.</param>
/// <param name="Dropped">Gate action for parts dropped under overload.</param>
public sealed record VerdictPolicy(
    double Threshold = 3.0,
    double UnsureBand = 0.5,
    GateAction Unsure = GateAction.Reject,
    GateAction WarmingUp = GateAction.Accept,
    GateAction Timeout = GateAction.Reject,
    GateAction Dropped = GateAction.Reject)
{
    /// <summary>The verdict for a scored frame. A score that is not a number is an error, never a pass.</summary>
    public VerdictKind Decide(float calibrated)
    {
        if (!float.IsFinite(calibrated)) return VerdictKind.Error;
        double band = Math.Max(0, UnsureBand);
        if (band > 0 && calibrated > Threshold - band && calibrated < Threshold + band) return VerdictKind.Unsure;
        return calibrated >= Threshold ? VerdictKind.Fail : VerdictKind.Pass;
    }

    /// <summary>
    /// Whether the gate should divert the part. Pass accepts and fail rejects; an error always rejects
    /// (an internal failure must never let a part through); the others follow the configured actions.
    /// </summary>
    public bool Rejects(VerdictKind kind) => kind switch
    {
        VerdictKind.Pass => false,
        VerdictKind.Fail => true,
        VerdictKind.Error => true,
        VerdictKind.Unsure => Unsure == GateAction.Reject,
        VerdictKind.WarmingUp => WarmingUp == GateAction.Reject,
        VerdictKind.Timeout => Timeout == GateAction.Reject,
        VerdictKind.Dropped => Dropped == GateAction.Reject,
        _ => true,
    };
}
