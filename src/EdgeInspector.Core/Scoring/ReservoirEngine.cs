using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>A streamed frame's result.</summary>
/// <param name="FrameId">The caller's frame id.</param>
/// <param name="Patches">Fused patch scores on the grid.</param>
/// <param name="Image">Raw image score (mean of the top-N patch scores).</param>
/// <param name="Calibrated">Robust z against accepted frames: batch-independent, what thresholds use.</param>
/// <param name="WarmUp">True for frames scored together as the warm-up batch, when the engine became warm.</param>
/// <param name="ReferenceFrames">Ids of the frames that scored it, oldest first (negative: known-good image −1−i).</param>
public sealed record StreamResult(long FrameId, float[] Patches, float Image, float Calibrated, bool WarmUp, long[] ReferenceFrames);

/// <summary>
/// The line's engine: FSLC's coreset learning carried into a stream as a reservoir of recent good frames
/// (docs/engine.md). Frames arrive one at a time. The first <see cref="EngineOptions.Batch"/> are scored
/// together once the batch is full (MuSc's mutual scoring); from then on every frame is scored on arrival
/// against the <see cref="FrameReservoir"/>, and enters it only if it was not quarantined. A frame is always
/// scored before it can enter, so its own features never vouch for it.
/// <list type="bullet">
/// <item>k-center init: each reservoir frame keeps a k-center subset of its patches.</item>
/// <item>expanding: every accepted frame enters the reservoir; the oldest leaves.</item>
/// <item>filtering: a frame calibrated above κ_q never enters, nor the calibration; at warm-up the frames that
/// stand out within the batch leave.</item>
/// <item>score adjusting: a patch's score is the interval average of its nearest distances over the
/// reservoir's frames, so a pattern must recur in 30% of them to count as normal.</item>
/// </list>
/// </summary>
/// <remarks>Not thread-safe: one instance per camera pipeline.</remarks>
public sealed class ReservoirEngine : IDisposable
{
    private readonly EngineOptions _o;
    private readonly ScoreCalibrator _calibrator;
    private readonly FrameReservoir _reservoir;
    private readonly List<(FrameFeatures Frame, long Id)> _warmup = [];
    private readonly Action<FrameFeatures>? _release;
    private readonly Func<long, long>? _part;

    /// <summary>
    /// Creates an engine; it starts cold. <paramref name="release"/>, if given, receives every pushed
    /// frame once the engine no longer needs it (to return it to a pool): the reservoir keeps copies.
    /// </summary>
    /// <remarks><paramref name="part"/>, if given, maps an id to the part it shows when several ids show one
    /// part (the tiles of a frame in a pooled tiled engine): no entry scores another of its own part.
    /// <paramref name="kernel"/>, if given, makes the kernel the reservoir scores on (an accelerator's);
    /// without it the managed kernel scores.</remarks>
    public ReservoirEngine(FeatureLayout layout, EngineOptions options, Action<FrameFeatures>? release = null, Func<long, long>? part = null, ReservoirKernelFactory? kernel = null)
    {
        _part = part;
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ReservoirFrames, 2, nameof(options.ReservoirFrames));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Batch, 2, nameof(options.Batch));
        _o = options;
        _release = release;
        Layout = layout;
        _calibrator = new ScoreCalibrator(options.CalibrationWindow);
        var selection = new SparseProjection(layout, options.SelectionDimsPerView, options.Seed);
        int keep = Keep(layout, options);
        int radius = FrameReservoir.WindowRadius(layout, keep, options.ReservoirWindow);
        _reservoir = new FrameReservoir(layout, selection, options.ReservoirFrames, keep, options.IntervalFraction,
            kernel?.Invoke(layout, options.ReservoirFrames, Math.Min(keep, layout.Patches), options.TopN, radius), radius);
    }

    /// <summary>Patches a reservoir frame keeps at least (or the whole frame): on a coarse grid 1/16 would be a
    /// handful, too few to cover a frame's appearance.</summary>
    private const int LeastKept = 32;

    /// <summary>Patches a reservoir frame keeps: <see cref="EngineOptions.ReservoirKeep"/> of them, at least <see cref="LeastKept"/>.</summary>
    private static int Keep(FeatureLayout layout, EngineOptions options) =>
        Math.Max((int)Math.Round(options.ReservoirKeep * layout.Patches), Math.Min(layout.Patches, LeastKept));

    /// <summary>
    /// The most an engine of <paramref name="layout"/> and <paramref name="options"/> holds of what it
    /// learns: a full warm-up batch of frames' features, and a full reservoir.
    /// </summary>
    public static long MemoryBound(FeatureLayout layout, EngineOptions options) =>
        options.Batch * FrameFeatures.BytesFor(layout) + options.ReservoirFrames * FrameReservoir.BytesPerFrame(layout, Keep(layout, options), options.ReservoirWindow);

    /// <summary>Bytes held now by the warm-up batch's features and the reservoir's frames (at most <see cref="MemoryBound"/>).</summary>
    public long HeldBytes => _warmup.Count * FrameFeatures.BytesFor(Layout) + _reservoir.HeldBytes;

    /// <summary>Frees what the reservoir's kernel holds (nothing for the managed kernel).</summary>
    public void Dispose() => _reservoir.Dispose();

    /// <summary>The scoring path the reservoir runs: "managed" or "onnx".</summary>
    public string ScoringPath => _reservoir.ScoringPath;

    /// <summary>The layout of the frames it takes.</summary>
    public FeatureLayout Layout { get; }

    /// <summary>
    /// Where the engine's parallel loops run, nested ones included: by default the thread pool. A host
    /// that runs the warm-up build in the background gives it its own lower-priority scheduler here, so
    /// that the build neither takes the pool's threads nor the CPU that live frames need.
    /// </summary>
    public ParallelOptions Parallelism
    {
        get => _reservoir.Parallelism;
        set => _reservoir.Parallelism = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>The settings.</summary>
    public EngineOptions Options => _o;

    /// <summary>The reservoir of accepted frames that scores every new frame.</summary>
    public FrameReservoir Reservoir => _reservoir;

    /// <summary>True once frames are scored on arrival.</summary>
    public bool IsWarm { get; private set; }

    /// <summary>True once the calibration holds enough accepted scores (two) for calibrated scores to mean anything.</summary>
    public bool IsCalibrated => _calibrator.Count >= 2;

    /// <summary>Frames buffered for the warm-up batch.</summary>
    public int WarmupBuffered => _warmup.Count;

    /// <summary>Frames kept out of the reservoir and the calibration because they looked anomalous.</summary>
    public long Quarantined { get; private set; }

    /// <summary>Scores a frame against every reservoir frame but its own entry.</summary>
    private (FrameScore Score, long[] References) ScoreFrame(FrameFeatures frame, long id)
    {
        var patches = new float[Layout.Patches];
        var sources = new List<long>(_reservoir.Count);
        if (!_reservoir.Score(frame, id, patches, _o.TopN, out float image, sources, _part)) throw new InvalidOperationException($"Frame {id}: the reservoir holds no other frame to score it by.");
        return (new FrameScore(patches, image), sources.ToArray());
    }

    /// <summary>κ_q: only frames calibrated at or under it enter the reservoir and the calibration.</summary>
    private bool Accepts(float calibrated) => calibrated <= _o.QuarantineZ;

    /// <summary>
    /// Few-shot start: known-good frames fill the reservoir (the most recent ones, up to its capacity) and
    /// the calibration starts from their scores, each scored without its own entry; scoring starts with the
    /// next frame. One known-good frame scores the line but gives no scale yet.
    /// </summary>
    public void SeedKnownGood(IReadOnlyList<FrameFeatures> goods)
    {
        if (goods.Count == 0) return;
        for (int i = Math.Max(0, goods.Count - _reservoir.Capacity); i < goods.Count; i++) _reservoir.Add(goods[i], -1 - i);
        if (goods.Count > 1)
        {
            var seeded = new float[goods.Count];
            Parallel.For(0, goods.Count, Parallelism, i => seeded[i] = ScoreFrame(goods[i], -1 - i).Score.Image);
            foreach (float g in seeded) _calibrator.Accept(g);
        }
        IsWarm = true;
    }

    /// <summary>
    /// Takes the next frame in line order. Returns the results that became available: none while warming
    /// up, the whole warm-up batch when it completes, then one per frame.
    /// </summary>
    public IReadOnlyList<StreamResult> Push(FrameFeatures frame, long id)
    {
        if (!IsWarm)
        {
            _warmup.Add((frame, id));
            return _warmup.Count >= _o.Batch ? FinishWarmup() : [];
        }
        var (score, references) = ScoreFrame(frame, id);
        float u = _calibrator.Calibrate(score.Image);
        bool accepted = Accepts(u);
        if (accepted || _calibrator.Count < 2) _calibrator.Accept(score.Image);
        // After scoring: a frame never vouches for itself.
        if (accepted) _reservoir.Add(frame, id);
        else Quarantined++;
        _release?.Invoke(frame);
        return [new StreamResult(id, score.Patches, score.Image, u, false, references)];
    }

    /// <summary>The raw image score that calibrates to <paramref name="z"/> (NaN while uncalibrated).</summary>
    public float RawScoreAt(float z) => _calibrator.RawAt(z);

    /// <summary>Scores what the warm-up buffer holds now, even if the batch is not full (end of a run).</summary>
    public IReadOnlyList<StreamResult> Flush() => !IsWarm && _warmup.Count >= 2 ? FinishWarmup() : [];

    /// <summary>Drops the reservoir and calibration (product changeover or operator reset); the engine starts cold.</summary>
    public void Reset()
    {
        _calibrator.Clear();
        _reservoir.Clear();
        foreach (var (f, _) in _warmup) _release?.Invoke(f);
        _warmup.Clear();
        Quarantined = 0;
        IsWarm = false;
    }

    /// <summary>
    /// The warm-up: MuSc's mutual scoring, over the reservoir. The batch (evenly strided down to the
    /// reservoir's capacity) fills it, every frame of the batch is scored against the others' entries, and
    /// the frames that stand out within the batch (robust z above κ_q) leave it and stay out of the
    /// calibration. The interval average is what makes the few defect frames of a batch harmless
    /// references, as in MuSc itself.
    /// </summary>
    private IReadOnlyList<StreamResult> FinishWarmup()
    {
        int b = _warmup.Count;
        var frames = new FrameFeatures[b];
        var ids = new long[b];
        for (int i = 0; i < b; i++) (frames[i], ids[i]) = _warmup[i];
        int chosen = Math.Min(b, _reservoir.Capacity);
        for (int t = 0; t < chosen; t++)
        {
            int i = (int)((long)t * b / chosen);
            _reservoir.Add(frames[i], ids[i]);
        }
        var scores = new (FrameScore Score, long[] References)[b];
        Parallel.For(0, b, Parallelism, i => scores[i] = ScoreFrame(frames[i], ids[i]));

        var images = new float[b];
        for (int i = 0; i < b; i++) images[i] = scores[i].Score.Image;
        var (median, sigma) = Stats.RobustLocationScale(images); // overwrites images: read the scores below
        var standout = new HashSet<long>();
        for (int i = 0; i < b; i++)
        {
            bool within = sigma <= 0 || Accepts((scores[i].Score.Image - median) / sigma);
            if (within) _calibrator.Accept(scores[i].Score.Image);
            else standout.Add(ids[i]);
            _release?.Invoke(frames[i]);
        }
        // Two frames at least stay, so that every later frame has another to be scored by.
        int left = 0;
        foreach (long id in _reservoir.Ids()) if (!standout.Contains(id)) left++;
        if (left >= 2) _reservoir.RemoveWhere(standout.Contains);

        var results = new StreamResult[b];
        for (int i = 0; i < b; i++)
        {
            var (score, references) = scores[i];
            results[i] = new StreamResult(ids[i], score.Patches, score.Image, _calibrator.Calibrate(score.Image), true, references);
        }
        _warmup.Clear();
        IsWarm = true;
        return results;
    }

    /// <summary>The learned state: the reservoir's frames and the calibration's scores, oldest first (a copy).</summary>
    public LearnedState Capture() => new(_reservoir.Export(), _calibrator.Values(), Quarantined);

    /// <summary>
    /// Takes up a learned state (a warm restart): the reservoir and the calibration as captured, and the
    /// engine is warm at once. Frames buffered for a warm-up go back. Throws if the state does not fit
    /// this engine's layout or settings; the engine is then left as it was.
    /// </summary>
    public void Restore(LearnedState state)
    {
        if (state.Frames.Count < 2) throw new ArgumentException($"A learned state needs two reservoir frames or more; it holds {state.Frames.Count}.", nameof(state));
        if (state.Frames.Count > _reservoir.Capacity) throw new ArgumentException($"The state holds {state.Frames.Count} reservoir frames; this engine keeps {_reservoir.Capacity}.", nameof(state));
        foreach (var f in state.Frames) _reservoir.Validate(f);
        Reset();
        foreach (var f in state.Frames) _reservoir.Import(f);
        foreach (float s in state.Calibration) _calibrator.Accept(s);
        Quarantined = state.Quarantined;
        IsWarm = true;
    }
}

/// <summary>
/// An engine's learned state: what a warm restart needs. <paramref name="Frames"/> are the reservoir's, oldest
/// first; <paramref name="Calibration"/> the accepted image scores, oldest first.
/// </summary>
public sealed record LearnedState(IReadOnlyList<ReservoirFrame> Frames, float[] Calibration, long Quarantined);

/// <summary>
/// One reservoir frame as kept: its id and, per view, rows (patches × view dim). With <paramref name="Kept"/>
/// (a reservoir that searches a window), the rows are the frame's every patch and <paramref name="Kept"/> the
/// indices of its k-center subset; without, the rows are the kept patches themselves.
/// </summary>
public sealed record ReservoirFrame(long Id, float[][] Rows, int[]? Kept = null);
