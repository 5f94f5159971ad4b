namespace EdgeInspector.Core.Scoring;

/// <summary>
/// FSLC settings. The poster gives the structure only; every value here is our reconstruction
/// (spec §5.2, §6) and was measured against the MuSc reference (see docs/evaluation.md).
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

    /// <summary>
    /// Score adjusting at scoring time: lift each coreset element by its per-view adjusted score, so a
    /// patch's score is √(min_m ‖z−m‖² + a_v(m)²) per view. By the triangle inequality a patch's MuSc score
    /// is at most its distance to m plus m's own MuSc score a(m), so this tracks the reference. False
    /// gives the poster's literal rule, the plain nearest distance.
    /// </summary>
    public bool LiftByAdjusted { get; init; } = true;

    /// <summary>σ, in patches, of the Gaussian smoothing of the map (not of the image score); 0 = none.</summary>
    public float MapSigma { get; init; }

    /// <summary>Projected width per view for k-center selection (the total is this times the views).</summary>
    public int ProjectionDimsPerView { get; init; } = 24;

    /// <summary>Seed of the projection and of the first k-center pick.</summary>
    public int Seed { get; init; } = 7;

    // ---- streaming (spec §6, reconstructed) ----

    /// <summary>Frames of the warm-up batch and of each rolling update batch.</summary>
    public int Batch { get; init; } = 64;

    /// <summary>Upper bound on coreset elements, as a multiple of patches per frame.</summary>
    public double MaxCoresetPerPatches { get; init; } = 4.0;

    /// <summary>Expansion per rolling batch, as a fraction of patches per frame (E_max = P/4); 0 freezes the coreset after warm-up.</summary>
    public double UpdateExpandPerPatches { get; init; } = 0.25;

    /// <summary>c_frame: most admission candidates any one frame may offer per update.</summary>
    public int CandidatesPerFrame { get; init; } = 64;

    /// <summary>Patch-score quantile above which a patch of an accepted frame is an admission candidate.</summary>
    public double CandidateQuantile { get; init; } = 0.9;

    /// <summary>
    /// Upper end of the admission band, in multiples of (p99 − p50) above p99 of the batch's patch
    /// scores: extreme outliers are more likely defects than variation. Infinity disables the cutoff.
    /// </summary>
    public double CandidateUpperSpread { get; init; } = 3.0;

    /// <summary>
    /// Rolling batches over which the warm-up coreset is built: 1 = the first batch's coreset stays (its
    /// elements are anchors). K &gt; 1: at each of the next K − 1 updates the coreset is rebuilt from scratch
    /// (init, expand, filter) over the strided reference frames of every batch so far that was not
    /// quarantined, so that what becomes an anchor does not depend on one batch's mix of parts. Frames
    /// are scored on arrival throughout; the kept frames cost memory until the last rebuild. Not used when
    /// known-good frames seed the coreset (they are its anchors). Default 1: on magnetic tile, K = 8 made
    /// three line orders agree to 0.4 points of pixel AUROC without moving their mean (docs/evaluation.md, Results).
    /// </summary>
    public int WarmupBatches { get; init; } = 1;

    /// <summary>
    /// Whether the warm-up batch's elements are anchors (kept before any adaptive element when the
    /// coreset is re-thinned). Known-good elements are always anchors.
    /// </summary>
    public bool WarmupAnchors { get; init; } = true;

    /// <summary>
    /// λ_a: weight an element's adjusted score keeps at each rolling update, the rest coming from a fresh
    /// estimate against that batch's reference frames (spec §6.3 step 6, aEMA). 1 = never re-estimated,
    /// the default: on magnetic tile (0.5, a quarter per update) moved pixel AUROC +0.6 on one line order
    /// and −0.1 on another, image AUROC +0.8 and −0.9, for about 3 ms per frame (docs/evaluation.md, Results).
    /// </summary>
    public double AdjustedMemory { get; init; } = 1.0;

    /// <summary>Share of the line-learned elements whose adjusted score is re-estimated at each update (a rotating slice).</summary>
    public double ReestimateFraction { get; init; } = 1.0;

    /// <summary>
    /// Cold start by the reference (spec §6.2): MuSc scores the warm-up batch once and only its
    /// confidently normal patches may become warm-up elements.
    /// </summary>
    public bool ColdStartReference { get; init; }

    /// <summary>Cold start: patches under this quantile of the warm-up batch's MuSc patch scores are "confident normal".</summary>
    public double ColdStartQuantile { get; init; } = 0.7;

    /// <summary>
    /// Streaming: frames held in the reservoir that scores patches by MuSc's interval average over frames
    /// (<see cref="FrameReservoir"/>); 0 = no reservoir, patches are scored by the coreset alone. Default 64
    /// frames of 1/16 of their patches each (as many references as the 4·P coreset): on magnetic tile it
    /// took pixel AUROC from 71.6 / 77.6 (coreset alone, line orders 0 / 1) to 78.4 / 77.7, MuSc's level
    /// (78.4 / 77.9), at the same scoring time; 32 frames of 1/8 gave 78.4 / 76.9 (docs/evaluation.md, Results).
    /// </summary>
    public int ReservoirFrames { get; init; } = 64;

    /// <summary>Patches kept of each reservoir frame, as a fraction of the patches per frame (k-center subset).</summary>
    public double ReservoirKeep { get; init; } = 0.0625;

    /// <summary>
    /// Weight of the reservoir's score in a patch's score; the coreset's has the rest. 1 = the reservoir
    /// alone, and then no coreset is built or updated (known-good seeding still builds one).
    /// </summary>
    public double ReservoirWeight { get; init; } = 1.0;

    /// <summary>Every how many accepted frames one enters the reservoir (the reservoir spans Frames × Stride accepted frames).</summary>
    public int ReservoirStride { get; init; } = 1;

    /// <summary>κ_q: frames with a calibrated score above this contribute nothing to the coreset.</summary>
    public double QuarantineZ { get; init; } = 2.5;

    /// <summary>W: image scores of accepted frames kept for calibration.</summary>
    public int CalibrationWindow { get; init; } = 1000;

    /// <summary>
    /// Streaming: run each rolling update on a copy of the coreset in the background and swap it in
    /// when done, instead of inside the push that fills the batch (which holds up every frame behind
    /// it for the update's duration). Frames that arrive meanwhile are scored against the previous
    /// coreset. Off by default so that evaluation runs stay deterministic; the line service turns it on.
    /// </summary>
    public bool BackgroundUpdates { get; init; }
}
