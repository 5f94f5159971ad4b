using EdgeInspector.Core.Coreset;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>A streamed frame's result.</summary>
/// <param name="FrameId">The caller's frame id.</param>
/// <param name="Patches">Fused patch scores on the grid.</param>
/// <param name="Image">Raw image score (mean of the top-N patch scores).</param>
/// <param name="Calibrated">Robust z against accepted frames: batch-independent, what thresholds use.</param>
/// <param name="WarmUp">True for frames scored together as the warm-up batch, when the engine became warm.</param>
/// <param name="CoresetVersion">Version of the coreset that scored it; 0 when none did (the reservoir alone).</param>
/// <param name="ReferenceFrames">Ids of the reservoir frames that scored it, oldest first (negative: known-good
/// image −1−i); null when the coreset alone scored it.</param>
public sealed record StreamResult(long FrameId, float[] Patches, float Image, float Calibrated, bool WarmUp, long CoresetVersion, long[]? ReferenceFrames = null);

/// <summary>
/// Streaming FSLC, the mode a line runs (spec §6, simplified and measured): frames arrive one at a time;
/// after a warm-up batch (or at once, when known-good frames seed it) every new frame is scored on
/// arrival. By default against a <see cref="FrameReservoir"/> of recent accepted frames (each a k-center
/// subset of its patches), MuSc's way; then no coreset is built (<see cref="CoresetLearns"/>). With
/// <see cref="FslcOptions.ReservoirFrames"/> 0 (or a blend), against a coreset that every rolling batch
/// updates: candidates are the poorly covered patches of accepted (non-quarantined) frames, expansion
/// picks the farthest of them, the interval-average filter admits only those that recur across the
/// batch's other frames, and the size is capped by k-center re-thinning that keeps anchors. A frame is
/// always scored before any of its patches can enter what scores later frames, so its own features
/// never vouch for it.
/// </summary>
/// <remarks>Not thread-safe: one instance per camera pipeline. A learning coreset retains pushed frames until the next update.</remarks>
public sealed class StreamingFslc
{
    private readonly FslcOptions _o;
    private readonly Fslc _fslc;
    private readonly ScoreCalibrator _calibrator;
    private readonly List<(FrameFeatures Frame, long Id)> _warmup = [];
    private List<RollingFrame> _rolling = [];
    // A background update and the rolling batch it reads (whose reference frames go back to the
    // caller's pool once it is done).
    private (Task<UpdateOutcome> Task, List<RollingFrame> Batch)? _pending;
    // Warm-up rebuilds (FslcOptions.WarmupBatches > 1): whole reference frames kept since the warm-up
    // batch, and the rebuilds still to come. Kept frames are released after the last rebuild is applied.
    private readonly List<(FrameFeatures Frame, long Id)> _kept = [];
    private int _rebuildsLeft;

    /// <summary>What an update produced: the new coreset and its counts, applied on the caller's thread.</summary>
    private sealed record UpdateOutcome(PatchCoreset Coreset, long Admitted, long Quarantined);

    /// <summary>The frames a warm-up rebuild builds from (a snapshot: the kept list may grow meanwhile).</summary>
    private sealed record Rebuild(FrameFeatures[] Frames, long[] Ids);
    private readonly int _referenceStride;

    /// <summary>
    /// What the engine keeps of a scored frame until the next update: its scores, its best admission
    /// candidates (rows of every view, plus projections), and the whole frame only if it is one of the
    /// strided reference frames of the adjusted-score filter. Everything else goes back at once.
    /// </summary>
    private sealed class RollingFrame
    {
        public long Id;
        public float[] Patches = [];
        public float Calibrated;
        public FrameFeatures? Reference;
        public int[] CandidatePatches = [];
        public float[] CandidateScores = [];
        public float[][] CandidateRows = [];
        public float[] CandidateProjected = [];
    }
    private readonly int _cap;

    private readonly Action<FrameFeatures>? _release;

    // The frame reservoir (FslcOptions.ReservoirFrames > 0) and the accepted frames counted towards its stride.
    private readonly FrameReservoir? _reservoir;
    private long _acceptedForReservoir;

    /// <summary>
    /// Creates an engine; it starts cold. <paramref name="release"/>, if given, receives every pushed
    /// frame once the engine no longer needs it (to return it to a pool).
    /// </summary>
    public StreamingFslc(FeatureLayout layout, FslcOptions options, Action<FrameFeatures>? release = null)
    {
        _release = release;
        _o = options;
        _fslc = new Fslc(layout, options);
        _calibrator = new ScoreCalibrator(options.CalibrationWindow);
        _cap = Math.Max(1, (int)(options.MaxCoresetPerPatches * layout.Patches));
        _referenceStride = Math.Max(1, (int)Math.Ceiling((double)Math.Max(2, options.Batch) / Math.Max(1, options.FilterReferences)));
        Coreset = new PatchCoreset(layout, _fslc.Projection.OutputDim);
        if (options.ReservoirFrames > 0)
        {
            // At least one kernel panel's worth: fewer saves no time (the kernel pads to panels of 32)
            // and may not cover a frame's appearance on a coarse grid.
            int keep = Math.Max((int)Math.Round(options.ReservoirKeep * layout.Patches), Math.Min(layout.Patches, PackedPanels.PanelWidth));
            _reservoir = new FrameReservoir(layout, _fslc.Projection, options.ReservoirFrames, keep, options.IntervalFraction);
        }
    }

    /// <summary>The frame reservoir, when <see cref="FslcOptions.ReservoirFrames"/> asks for one.</summary>
    public FrameReservoir? Reservoir => _reservoir;

    /// <summary>
    /// False when the reservoir scores alone (weight 1, room for two frames or more): no coreset is built
    /// or updated then, since it would score nothing (it is only the fallback for a reservoir holding no
    /// other frame, which a warm engine with two frames never is). The warm-up is mutual scoring over the
    /// reservoir, and each frame is handed back as soon as it is scored. Known-good seeding still builds one.
    /// </summary>
    public bool CoresetLearns => _reservoir is null || _o.ReservoirWeight < 1 || _reservoir.Capacity < 2;

    /// <summary>
    /// A frame's score: the coreset's nearest distance, the reservoir's interval average, or their
    /// weighted mean (<see cref="FslcOptions.ReservoirWeight"/>). The coreset alone while the reservoir
    /// holds no other frame.
    /// </summary>
    private Scored ScoreFrame(FrameFeatures frame, long id)
    {
        var patches = new float[_fslc.Layout.Patches];
        var sources = _reservoir is null ? null : new List<long>(_reservoir.Count);
        if (_reservoir is null || !_reservoir.Score(frame, id, patches, sources)) return new(_fslc.Score(frame, id, Coreset), null);
        float w = (float)Math.Clamp(_o.ReservoirWeight, 0, 1);
        if (w < 1)
        {
            var c = _fslc.Score(frame, id, Coreset).Patches;
            for (int q = 0; q < patches.Length; q++) patches[q] = w * patches[q] + (1 - w) * c[q];
        }
        return new(_fslc.Finish(patches), sources!.ToArray());
    }

    /// <summary>A frame's score and the reservoir frames behind it (null: the coreset alone).</summary>
    private readonly record struct Scored(FrameScore Score, long[]? References);

    /// <summary>Offers an accepted frame to the reservoir (every <see cref="FslcOptions.ReservoirStride"/>-th enters).</summary>
    private void OfferToReservoir(FrameFeatures frame, long id)
    {
        if (_reservoir is null) return;
        if (_acceptedForReservoir++ % Math.Max(1, _o.ReservoirStride) == 0) _reservoir.Add(frame, id);
    }

    /// <summary>The current coreset.</summary>
    public PatchCoreset Coreset { get; private set; }

    /// <summary>True once frames are scored on arrival.</summary>
    public bool IsWarm { get; private set; }

    /// <summary>Frames buffered for the warm-up batch.</summary>
    public int WarmupBuffered => _warmup.Count;

    /// <summary>Elements admitted so far, for status and audits (a warm-up rebuild counts every element it built).</summary>
    public long Admitted { get; private set; }

    /// <summary>Frames kept out of coreset updates because they looked anomalous.</summary>
    public long Quarantined { get; private set; }

    /// <summary>Rolling updates done.</summary>
    public long Updates { get; private set; }

    /// <summary>
    /// Few-shot start: known-good frames become anchor elements (k-center over their patches, no
    /// filtering since they are known good), and scoring starts with the next frame.
    /// </summary>
    public void SeedKnownGood(IReadOnlyList<FrameFeatures> goods)
    {
        if (goods.Count == 0) return;
        int p = _fslc.Layout.Patches, pd = _fslc.Projection.OutputDim;
        var projected = new float[goods.Count][];
        Parallel.For(0, goods.Count, i => projected[i] = _fslc.ProjectFrame(goods[i]));
        var all = new float[goods.Count * p * pd];
        for (int i = 0; i < goods.Count; i++) projected[i].CopyTo(all, i * p * pd);
        int k = Math.Min(_cap, (int)Math.Ceiling(_o.InitFraction * (1 + _o.ExpandFraction) * Math.Min(goods.Count, _o.InitFrames) * p));
        int[] sel = KCenterGreedy.Select(all, pd, k, start: 0);
        // Known-good sources get negative ids so they never collide with line frames.
        foreach (int s in sel) Coreset.Add(goods[s / p], s % p, all.AsSpan(s * pd, pd), -1 - s / p, anchor: true);
        if (goods.Count > 1)
        {
            var ids = new long[goods.Count];
            for (int i = 0; i < ids.Length; i++) ids[i] = -1 - i;
            var (refs, refIds) = Fslc.References(goods, ids, _o.FilterReferences);
            Fslc.AdjustedScores(Coreset, refs, refIds, _o.IntervalFraction).ApplyTo(Coreset);
        }
        Coreset.Lift = _o.LiftByAdjusted;
        // Calibration starts from the known-good frames themselves, each scored without its own
        // elements (leave-one-out): without it the first line frames would have no scale to be judged on.
        Coreset.Packed();
        var seeded = new float[goods.Count];
        if (_reservoir is not null) for (int i = Math.Max(0, goods.Count - _reservoir.Capacity); i < goods.Count; i++) _reservoir.Add(goods[i], -1 - i);
        Parallel.For(0, goods.Count, i => seeded[i] = ScoreFrame(goods[i], -1 - i).Score.Image);
        foreach (float g in seeded) _calibrator.Accept(g);
        IsWarm = true;
    }

    /// <summary>True once the calibration holds enough accepted scores (two) for calibrated scores to mean anything.</summary>
    public bool IsCalibrated => _calibrator.Count >= 2;

    /// <summary>
    /// Takes the next frame in line order. Returns the results that became available: none while warming
    /// up, the whole warm-up batch when it completes, then one per frame.
    /// </summary>
    public IReadOnlyList<StreamResult> Push(FrameFeatures frame, long id)
    {
        if (!IsWarm)
        {
            _warmup.Add((frame, id));
            return _warmup.Count >= Math.Max(2, _o.Batch) ? FinishWarmup() : [];
        }

        PollUpdate();
        var (score, references) = ScoreFrame(frame, id);
        float u = _calibrator.Calibrate(score.Image);
        bool accepted = Accepts(u);
        if (accepted || _calibrator.Count < 2) _calibrator.Accept(score.Image);
        // After scoring: a frame never vouches for itself.
        if (accepted) OfferToReservoir(frame, id);
        var result = new StreamResult(id, score.Patches, score.Image, u, false, CoresetLearns ? Coreset.Version : 0, references);
        if (!CoresetLearns)
        {
            if (!accepted) Quarantined++;
            _release?.Invoke(frame); // the reservoir keeps copies
            return [result];
        }
        _rolling.Add(Keep(frame, id, score.Patches, u));
        if (_rolling.Count >= Math.Max(2, _o.Batch))
        {
            if (!_o.BackgroundUpdates) Update();
            else if (_pending is null) StartBackgroundUpdate();
            // else: the previous update is still running; this batch grows until it is done.
        }
        return [result];
    }

    private RollingFrame Keep(FrameFeatures frame, long id, float[] patches, float calibrated)
    {
        var r = new RollingFrame { Id = id, Patches = patches, Calibrated = calibrated };
        int p = patches.Length, n = Math.Min(_o.CandidatesPerFrame, p), pd = _fslc.Projection.OutputDim;
        // The frame's n highest-scoring patches: the only ones that could become admission candidates.
        r.CandidatePatches = Stats.OrderDescending(patches)[..n];
        r.CandidateScores = new float[n];
        r.CandidateRows = new float[frame.Views.Length][];
        r.CandidateProjected = new float[n * pd];
        for (int v = 0; v < frame.Views.Length; v++)
        {
            int d = frame.Layout.Views[v].Dim;
            r.CandidateRows[v] = new float[n * d];
            for (int c = 0; c < n; c++) frame.Views[v].AsSpan(r.CandidatePatches[c] * d, d).CopyTo(r.CandidateRows[v].AsSpan(c * d, d));
        }
        for (int c = 0; c < n; c++)
        {
            r.CandidateScores[c] = patches[r.CandidatePatches[c]];
            _fslc.Projection.Project(frame, r.CandidatePatches[c], r.CandidateProjected.AsSpan(c * pd, pd));
        }
        if (_rolling.Count % _referenceStride == 0) r.Reference = frame;
        else _release?.Invoke(frame);
        return r;
    }

    /// <summary>The raw patch or image score that calibrates to <paramref name="z"/> (NaN while cold).</summary>
    public float RawScoreAt(float z) => _calibrator.RawAt(z);

    /// <summary>Scores what the warm-up buffer holds now, even if the batch is not full (end of a run).</summary>
    public IReadOnlyList<StreamResult> Flush() => !IsWarm && _warmup.Count >= 2 ? FinishWarmup() : [];

    /// <summary>Drops the coreset and calibration (product changeover or operator reset); the engine starts cold.</summary>
    public void Reset()
    {
        if (_pending is not null)
        {
            // Let a running update finish (it reads frames about to be released), then drop its result.
            var (task, batch) = _pending.Value;
            try { task.Wait(); } catch (AggregateException) { }
            foreach (var r in batch) if (r.Reference is { } pf) _release?.Invoke(pf);
            _pending = null;
        }
        Coreset = new PatchCoreset(_fslc.Layout, _fslc.Projection.OutputDim);
        _calibrator.Clear();
        _reservoir?.Clear();
        _acceptedForReservoir = 0;
        foreach (var (f, _) in _warmup) _release?.Invoke(f);
        foreach (var r in _rolling) if (r.Reference is { } f) _release?.Invoke(f);
        _warmup.Clear();
        _rolling.Clear();
        ReleaseKept();
        _rebuildsLeft = 0;
        IsWarm = false;
    }

    private IReadOnlyList<StreamResult> FinishWarmup()
    {
        var frames = new FrameFeatures[_warmup.Count];
        var ids = new long[_warmup.Count];
        for (int i = 0; i < frames.Length; i++) (frames[i], ids[i]) = _warmup[i];
        if (!CoresetLearns) return WarmupByReservoir(frames, ids);
        Coreset = _fslc.Build(frames, ids, anchors: _o.WarmupAnchors, eligible: _o.ColdStartReference ? ConfidentNormal(frames) : null);
        Coreset.Packed();
        var scores = new Scored[frames.Length];
        Parallel.For(0, frames.Length, i => scores[i] = new(_fslc.Score(frames[i], ids[i], Coreset), null));
        if (_reservoir is not null) scores = FillReservoir(frames, ids, scores);

        // Calibration starts from the warm-up frames that do not stand out within their own batch.
        var accepted = AcceptedWithinBatch(scores);
        _rebuildsLeft = Math.Max(0, _o.WarmupBatches - 1);
        for (int i = 0; i < frames.Length; i++)
        {
            if (accepted[i]) _calibrator.Accept(scores[i].Score.Image);
            // The same strided references a rolling batch keeps whole, for the rebuilds to come; the rest
            // go back now (the coreset holds copies of its rows, and every frame is scored).
            if (accepted[i] && _rebuildsLeft > 0 && i % _referenceStride == 0) _kept.Add(_warmup[i]);
            else _release?.Invoke(_warmup[i].Frame);
        }
        long version = Coreset.Version; // the coreset that scored them: re-thinning may bump it
        Thin(Coreset);
        return WarmResults(ids, scores, version);
    }

    /// <summary>Which frames of a batch do not stand out within it: robust z of the image score at most κ_q (all, when the batch has no spread).</summary>
    private bool[] AcceptedWithinBatch(Scored[] scores)
    {
        var imgs = new float[scores.Length];
        for (int i = 0; i < imgs.Length; i++) imgs[i] = scores[i].Score.Image;
        var (median, sigma) = Stats.RobustLocationScale(imgs); // imgs is overwritten: read the scores below
        var accepted = new bool[scores.Length];
        for (int i = 0; i < accepted.Length; i++) accepted[i] = sigma <= 0 || Accepts((scores[i].Score.Image - median) / sigma);
        return accepted;
    }

    /// <summary>The warm-up batch's results, calibrated once every accepted frame is in; the engine is warm from here on.</summary>
    private StreamResult[] WarmResults(long[] ids, Scored[] scores, long coresetVersion)
    {
        var results = new StreamResult[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            var (score, references) = scores[i];
            results[i] = new StreamResult(ids[i], score.Patches, score.Image, _calibrator.Calibrate(score.Image), true, coresetVersion, references);
        }
        _warmup.Clear();
        IsWarm = true;
        return results;
    }

    /// <summary>
    /// The warm-up when the reservoir scores alone: MuSc's mutual scoring, over the reservoir. The batch
    /// (evenly strided down to the reservoir's capacity) fills it, every frame of the batch is scored
    /// against the others' entries, and the frames that stand out within the batch (robust z above κ_q)
    /// leave it and stay out of the calibration. One scoring pass and no coreset: the interval average
    /// (the lowest 30% of the per-frame distances) is what makes the few defect frames of a batch harmless
    /// references, as in MuSc itself.
    /// </summary>
    private IReadOnlyList<StreamResult> WarmupByReservoir(FrameFeatures[] frames, long[] ids)
    {
        var (chosen, chosenIds) = Fslc.References(frames, ids, _reservoir!.Capacity);
        for (int t = 0; t < chosen.Length; t++) _reservoir.Add(chosen[t], chosenIds[t]);
        var scores = new Scored[frames.Length];
        Parallel.For(0, frames.Length, i => scores[i] = ScoreFrame(frames[i], ids[i]));
        var accepted = AcceptedWithinBatch(scores);
        var standout = new HashSet<long>();
        for (int i = 0; i < frames.Length; i++)
        {
            if (accepted[i]) _calibrator.Accept(scores[i].Score.Image);
            else standout.Add(ids[i]);
            _release?.Invoke(frames[i]); // the reservoir keeps copies
        }
        // Two frames at least stay, so that every later frame (and each of them) has another to be scored by.
        int left = 0;
        foreach (long id in _reservoir.Ids()) if (!standout.Contains(id)) left++;
        if (left >= 2) _reservoir.RemoveWhere(standout.Contains);
        return WarmResults(ids, scores, 0);
    }

    /// <summary>
    /// Fills the reservoir from the warm-up batch: up to its capacity of the frames whose coreset score
    /// does not stand out within the batch, evenly strided; then scores the whole batch again by the
    /// reservoir (each frame without its own entry), so that warm-up and later frames share one scale.
    /// </summary>
    private Scored[] FillReservoir(FrameFeatures[] frames, long[] ids, Scored[] coresetScores)
    {
        var within = AcceptedWithinBatch(coresetScores);
        var accepted = new List<FrameFeatures>();
        var acceptedIds = new List<long>();
        for (int i = 0; i < frames.Length; i++)
        {
            if (!within[i]) continue;
            accepted.Add(frames[i]);
            acceptedIds.Add(ids[i]);
        }
        if (accepted.Count > 0)
        {
            var (chosen, chosenIds) = Fslc.References(accepted, acceptedIds, _reservoir!.Capacity);
            for (int t = 0; t < chosen.Length; t++) _reservoir.Add(chosen[t], chosenIds[t]);
        }
        var scores = new Scored[frames.Length];
        Parallel.For(0, frames.Length, i => scores[i] = ScoreFrame(frames[i], ids[i]));
        return scores;
    }

    /// <summary>
    /// Cold start by the reference (spec §6.2): MuSc on the warm-up batch; only patches under the batch's
    /// <see cref="FslcOptions.ColdStartQuantile"/> of MuSc patch scores, in frames whose MuSc image score
    /// does not stand out (robust z ≤ κ), may become warm-up elements. A defect that recurs within the
    /// warm-up batch but not in most of its frames is kept out of the anchors this way.
    /// </summary>
    private bool[] ConfidentNormal(FrameFeatures[] frames)
    {
        var musc = new MuScScorer(new MuScOptions { IntervalFraction = _o.IntervalFraction, TopN = _o.TopN }).Score(frames);
        int b = frames.Length, p = _fslc.Layout.Patches;
        var all = new float[b * p];
        for (int i = 0; i < b; i++) musc.Patches[i].CopyTo(all, i * p);
        float cut = Stats.Quantile((float[])all.Clone(), _o.ColdStartQuantile);
        var (median, sigma) = Stats.RobustLocationScale((float[])musc.ImageTopN.Clone());
        var eligible = new bool[b * p];
        for (int i = 0; i < b; i++)
        {
            if (sigma > 0 && (musc.ImageTopN[i] - median) / sigma > _o.FilterZ) continue;
            for (int q = 0; q < p; q++) eligible[i * p + q] = all[i * p + q] <= cut;
        }
        return eligible;
    }

    /// <summary>True while a background update runs.</summary>
    public bool UpdatePending => _pending is not null;

    /// <summary>Waits for a background update to finish and applies it (tests, shutdown).</summary>
    public void CompleteUpdate()
    {
        _pending?.Task.Wait();
        PollUpdate();
    }

    private void StartBackgroundUpdate()
    {
        // Pack now, on this thread: packing reorders the live coreset's arrays, and from here on the
        // live coreset is only read (by scoring here and by the update's copy there) until the swap.
        Coreset.Packed();
        var batch = _rolling;
        _rolling = [];
        var live = Coreset;
        long update = Updates;
        var rebuild = TakeRebuild(batch);
        _pending = (Task.Run(() => ComputeUpdate(batch, live, copy: true, update, rebuild)), batch);
    }

    /// <summary>Swaps in a finished background update (on the caller's thread).</summary>
    private void PollUpdate()
    {
        if (_pending is not ({ IsCompleted: true } done, var batch)) return;
        _pending = null;
        foreach (var r in batch) if (r.Reference is { } f) _release?.Invoke(f);
        var outcome = done.GetAwaiter().GetResult(); // an exception here is the update's: surface it
        Apply(outcome);
    }

    private void Apply(UpdateOutcome outcome)
    {
        Coreset = outcome.Coreset;
        Updates++;
        Admitted += outcome.Admitted;
        Quarantined += outcome.Quarantined;
        if (_rebuildsLeft == 0) ReleaseKept(); // the last rebuild is in: its frames are no longer read
    }

    /// <summary>
    /// During the warm-up rebuilds: moves the batch's accepted reference frames to the kept frames and
    /// returns a snapshot of all of them for the rebuild; null once the rebuilds are done.
    /// </summary>
    private Rebuild? TakeRebuild(List<RollingFrame> batch)
    {
        if (_rebuildsLeft == 0) return null;
        foreach (var r in batch)
        {
            if (r.Reference is not { } f || !Accepts(r.Calibrated)) continue;
            _kept.Add((f, r.Id));
            r.Reference = null; // now owned by the kept list, not released with the batch
        }
        _rebuildsLeft--;
        if (_kept.Count < 2) return null;
        var frames = new FrameFeatures[_kept.Count];
        var ids = new long[_kept.Count];
        for (int i = 0; i < frames.Length; i++) (frames[i], ids[i]) = _kept[i];
        return new Rebuild(frames, ids);
    }

    /// <summary>κ_q: only frames calibrated at or under it feed the coreset and the calibration; the rest are quarantined.</summary>
    private bool Accepts(float calibrated) => calibrated <= _o.QuarantineZ;

    private void ReleaseKept()
    {
        foreach (var (f, _) in _kept) _release?.Invoke(f);
        _kept.Clear();
    }

    /// <summary>One rolling update, in place: quarantine, candidates, expand, filter, admit, cap.</summary>
    private void Update()
    {
        try
        {
            Apply(ComputeUpdate(_rolling, Coreset, copy: false, Updates, TakeRebuild(_rolling)));
        }
        finally
        {
            foreach (var r in _rolling) if (r.Reference is { } f) _release?.Invoke(f);
            _rolling.Clear();
        }
    }

    /// <summary>
    /// The update proper, on <paramref name="live"/> itself or on a copy of it. Reads only the rolling
    /// batch and the coreset, touches no other engine state: safe off the scoring thread with a copy.
    /// </summary>
    private UpdateOutcome ComputeUpdate(List<RollingFrame> batch, PatchCoreset live, bool copy, long update, Rebuild? rebuild)
    {
        var accepted = new List<RollingFrame>();
        long quarantined = 0;
        foreach (var r in batch)
        {
            if (Accepts(r.Calibrated)) accepted.Add(r);
            else quarantined++;
        }
        if (rebuild is not null)
        {
            // A new coreset from every kept frame, replacing the live one (which is only read).
            var built = _fslc.Build(rebuild.Frames, rebuild.Ids, anchors: _o.WarmupAnchors);
            Thin(built);
            built.Succeed(live);
            built.Packed();
            return new UpdateOutcome(built, built.Count, quarantined);
        }
        var target = copy ? live.Clone() : live;
        long admitted = accepted.Count >= 3 ? Admit(accepted, target, update) : 0;
        return new UpdateOutcome(target, admitted, quarantined);
    }

    /// <summary>
    /// Re-estimates the adjusted score of a rotating slice of the line-learned elements against this
    /// batch's reference frames and blends it into what each had (spec §6.3 step 6, aEMA): an element
    /// whose a(m) came from one batch where its pattern happened to be common (a recurring defect in the
    /// warm-up batch) is lifted as the line shows the pattern to be rare. Known-good elements keep theirs.
    /// </summary>
    private void Reestimate(PatchCoreset coreset, List<FrameFeatures> refs, List<long> refIds, long update)
    {
        double keep = _o.AdjustedMemory;
        if (keep >= 1 || refs.Count < 2 || coreset.Count == 0) return;
        int views = _fslc.Layout.Views.Count;
        // Slice k of every `slices` consecutive elements; the slice rotates with the update count.
        int slices = Math.Max(1, (int)Math.Round(1 / Math.Clamp(_o.ReestimateFraction, 1e-3, 1)));
        var sources = coreset.Sources;
        var chosen = new List<int>();
        for (int e = (int)(update % slices); e < coreset.Count; e += slices) if (sources[e] >= 0) chosen.Add(e);
        if (chosen.Count == 0) return;
        var rows = new float[views][];
        for (int v = 0; v < views; v++)
        {
            int d = _fslc.Layout.Views[v].Dim;
            var all = coreset.Rows(v);
            rows[v] = new float[chosen.Count * d];
            for (int c = 0; c < chosen.Count; c++) all.Slice(chosen[c] * d, d).CopyTo(rows[v].AsSpan(c * d, d));
        }
        var ids = new long[chosen.Count];
        for (int c = 0; c < ids.Length; c++) ids[c] = sources[chosen[c]];
        var fresh = Fslc.AdjustedScores(rows, ids, refs, refIds, _o.IntervalFraction);
        var blended = new float[views];
        for (int c = 0; c < chosen.Count; c++)
        {
            var current = coreset.ViewAdjusted.Slice(chosen[c] * views, views);
            for (int v = 0; v < views; v++) blended[v] = (float)(keep * current[v] + (1 - keep) * fresh.PerView[c * views + v]);
            coreset.SetAdjusted(chosen[c], blended);
        }
    }

    private long Admit(List<RollingFrame> accepted, PatchCoreset coreset, long update)
    {
        int p = _fslc.Layout.Patches, pd = _fslc.Projection.OutputDim;
        var refs = new List<FrameFeatures>();
        var refIds = new List<long>();
        foreach (var r in accepted)
        {
            if (r.Reference is null) continue;
            refs.Add(r.Reference);
            refIds.Add(r.Id);
        }
        if (refs.Count < 2) return 0;
        Reestimate(coreset, refs, refIds, update);

        var allScores = new float[accepted.Count * p];
        for (int i = 0; i < accepted.Count; i++) accepted[i].Patches.CopyTo(allScores, i * p);
        Array.Sort(allScores);
        float lo = Stats.SortedQuantile(allScores, _o.CandidateQuantile);
        float p50 = Stats.SortedQuantile(allScores, 0.5), p99 = Stats.SortedQuantile(allScores, 0.99);
        // Extreme outliers are more likely defects than variation: never candidates.
        float hi = (float)(p99 + _o.CandidateUpperSpread * (p99 - p50));

        var cand = new List<(RollingFrame Frame, int Slot)>();
        foreach (var r in accepted)
        {
            for (int c = 0; c < r.CandidateScores.Length; c++)
            {
                float v = r.CandidateScores[c];
                if (v <= lo) break; // sorted descending
                if (v <= hi) cand.Add((r, c));
            }
        }
        int e = (int)(_o.UpdateExpandPerPatches * p);
        if (cand.Count == 0 || e == 0) return 0; // e == 0: a frozen coreset, learning ends with the warm-up

        var proj = new float[cand.Count * pd];
        for (int c = 0; c < cand.Count; c++) cand[c].Frame.CandidateProjected.AsSpan(cand[c].Slot * pd, pd).CopyTo(proj.AsSpan(c * pd, pd));
        int[] picked = KCenterGreedy.Select(proj, pd, e, coreset.Projected.ToArray());

        var trial = new PatchCoreset(_fslc.Layout, pd, picked.Length);
        foreach (int c in picked) AddCandidate(trial, cand[c], default);
        var a = Fslc.AdjustedScores(trial, refs, refIds, _o.IntervalFraction);

        // Admission is judged against the adjusted scores of what the coreset already holds.
        var reference = coreset.FusedAdjusted();
        if (reference.Length < 3) return 0;
        var (median, sigma) = Stats.RobustLocationScale(reference);
        if (sigma <= 0) return 0;
        int views = _fslc.Layout.Views.Count;
        long admitted = 0;
        for (int t = 0; t < trial.Count; t++)
        {
            if ((a.Fused[t] - median) / sigma > _o.FilterZ) continue;
            AddCandidate(coreset, cand[picked[t]], a.PerView.AsSpan(t * views, views));
            admitted++;
        }
        Thin(coreset);
        return admitted;
    }

    private void AddCandidate(PatchCoreset target, (RollingFrame Frame, int Slot) c, ReadOnlySpan<float> viewAdjusted)
    {
        var rows = new float[c.Frame.CandidateRows.Length][];
        for (int v = 0; v < rows.Length; v++)
        {
            int d = _fslc.Layout.Views[v].Dim;
            rows[v] = c.Frame.CandidateRows[v].AsSpan(c.Slot * d, d).ToArray();
        }
        int pd = _fslc.Projection.OutputDim;
        target.AddRows(rows, c.Frame.CandidateProjected.AsSpan(c.Slot * pd, pd), c.Frame.Id, anchor: false, viewAdjusted);
    }

    /// <summary>Caps the coreset by k-center re-thinning: anchors first, then the adaptive elements that add most coverage.</summary>
    private void Thin(PatchCoreset coreset)
    {
        if (coreset.Count <= _cap) return;
        int n = coreset.Count, pd = coreset.ProjectedDim;
        var anchors = coreset.Anchors;
        int anchorCount = 0;
        foreach (bool a in anchors) if (a) anchorCount++;
        var keep = new bool[n];
        var all = coreset.Projected.ToArray();
        if (anchorCount >= _cap)
        {
            foreach (int s in KCenterGreedy.Select(all, pd, _cap, start: 0)) keep[s] = true;
        }
        else
        {
            var seeds = new float[anchorCount * pd];
            var others = new float[(n - anchorCount) * pd];
            var otherIndex = new int[n - anchorCount];
            int si = 0, oi = 0;
            for (int i = 0; i < n; i++)
            {
                if (anchors[i])
                {
                    keep[i] = true;
                    all.AsSpan(i * pd, pd).CopyTo(seeds.AsSpan(si++ * pd, pd));
                }
                else
                {
                    otherIndex[oi] = i;
                    all.AsSpan(i * pd, pd).CopyTo(others.AsSpan(oi++ * pd, pd));
                }
            }
            int[] sel = anchorCount > 0
                ? KCenterGreedy.Select(others, pd, _cap - anchorCount, seeds)
                : KCenterGreedy.Select(others, pd, _cap, start: 0);
            foreach (int s in sel) keep[otherIndex[s]] = true;
        }
        coreset.Retain(keep);
    }
}
