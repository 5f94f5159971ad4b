namespace EdgeInspector.Core.Scoring;

/// <summary>
/// The settings of the <see cref="ReservoirEngine"/>, and the one place their defaults are defined: the
/// YAML settings and the evaluation CLI start from <see cref="Default"/>. Why each default is what it is:
/// docs/decisions/0004-one-engine-a-reservoir-of-frames.md.
/// </summary>
public sealed record EngineOptions
{
    /// <summary>The defaults.</summary>
    public static EngineOptions Default { get; } = new();

    /// <summary>Frames of the warm-up batch, scored together once it is full.</summary>
    public int Batch { get; init; } = 64;

    /// <summary>Accepted frames held in the reservoir that scores every new frame.</summary>
    public int ReservoirFrames { get; init; } = 64;

    /// <summary>Share of each reservoir frame's patches kept (a k-center subset).</summary>
    public double ReservoirKeep { get; init; } = 0.0625;

    /// <summary>
    /// r: each reservoir frame is also searched whole within (2r + 1)² patch positions of a patch's own
    /// (−1: not at all; only the kept subset).
    /// </summary>
    public int ReservoirWindow { get; init; } = 2;

    /// <summary>Interval average: the mean of this lowest share of a patch's per-frame distances (MuSc's 30%).</summary>
    public double IntervalFraction { get; init; } = 0.3;

    /// <summary>N: the image score is the mean of the N largest patch scores (1: the map's maximum, as MuSc's).</summary>
    public int TopN { get; init; } = 1;

    /// <summary>κ_q: frames calibrated above this robust z are quarantined: they never enter the reservoir or the calibration.</summary>
    public double QuarantineZ { get; init; } = 2.5;

    /// <summary>W: image scores of accepted frames kept for calibration.</summary>
    public int CalibrationWindow { get; init; } = 1000;

    /// <summary>Scoring dimensions per view: every view is projected to this width before scoring (0: full width).</summary>
    public int ScoreDims { get; init; } = 128;

    /// <summary>Projected width per view of the k-center selection of a reservoir frame's patches.</summary>
    public int SelectionDimsPerView { get; init; } = 24;

    /// <summary>Seed of the selection projection.</summary>
    public int Seed { get; init; } = 7;

    /// <summary>
    /// The settings a learned state depends on, as text: a snapshot made under others is refused. Top N,
    /// the interval and the window are in it because the calibration's scores are on their scale; the
    /// warm-up batch and κ_q are not, since they only decide what enters later.
    /// </summary>
    public string Fingerprint() => FormattableString.Invariant(
        $"reservoir_frames={ReservoirFrames};reservoir_keep={ReservoirKeep:R};reservoir_window={ReservoirWindow};interval={IntervalFraction:R};top_n={TopN};window={CalibrationWindow};score_dims={ScoreDims};selection_dims={SelectionDimsPerView};seed={Seed}");
}
