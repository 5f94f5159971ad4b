namespace EdgeInspector.Core.Scoring;

/// <summary>
/// Batch FSLC's settings: the evaluation's yardstick beside MuSc, not the line's engine. The poster gives
/// the structure only; every value here is our reconstruction (spec §5.2), measured against the MuSc
/// reference (docs/evaluation.md).
/// </summary>
public sealed record FslcOptions
{
    /// <summary>R: frames sparsely sampled (evenly strided) for the initial coreset.</summary>
    public int InitFrames { get; init; } = 8;

    /// <summary>ρ0: initial coreset size as a fraction of the R frames' patches.</summary>
    public double InitFraction { get; init; } = 0.25;

    /// <summary>ρe: elements added by expansion, as a fraction of the initial coreset.</summary>
    public double ExpandFraction { get; init; } = 1.0;

    /// <summary>Jref: reference frames for the interval-average ("score adjusting") filter.</summary>
    public int FilterReferences { get; init; } = 32;

    /// <summary>Interval-average fraction of the filter (MuSc's 30%).</summary>
    public double IntervalFraction { get; init; } = 0.3;

    /// <summary>κ: elements whose adjusted score has a robust z above this are filtered out.</summary>
    public double FilterZ { get; init; } = 3.0;

    /// <summary>qmax: at most this fraction of the coreset is filtered in one pass.</summary>
    public double FilterMaxFraction { get; init; } = 0.15;

    /// <summary>N: the image score is the mean of the N largest patch scores.</summary>
    public int TopN { get; init; } = 10;

    /// <summary>Projected width per view for k-center selection (the total is this times the views).</summary>
    public int ProjectionDimsPerView { get; init; } = 24;

    /// <summary>Seed of the projection and of the first k-center pick.</summary>
    public int Seed { get; init; } = 7;
}
