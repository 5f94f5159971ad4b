using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;

namespace EdgeInspector.Core.Tests;

public sealed class FslcTests
{
    /// <summary>
    /// Synthetic line frames: every patch is one of a few "normal" directions plus noise; a defect frame
    /// has a 2x2 block of patches pointing in a direction no normal frame has.
    /// </summary>
    private sealed class SyntheticLine
    {
        public readonly FeatureLayout Layout = new(6, 6, [new ViewSpec("t", 1, 16), new ViewSpec("t", 3, 16)], 16);
        private readonly Random _rng = new(11);
        private readonly float[][] _normals;
        private readonly float[] _defect;

        public SyntheticLine()
        {
            _normals = Enumerable.Range(0, 4).Select(_ => Unit(Enumerable.Range(0, 16).Select(_ => (float)_rng.NextDouble() - 0.5f).ToArray())).ToArray();
            _defect = Unit(Enumerable.Range(0, 16).Select(_ => (float)_rng.NextDouble() - 0.5f).ToArray());
        }

        public FrameFeatures Frame(bool defect)
        {
            var f = new FrameFeatures(Layout);
            for (int v = 0; v < 2; v++)
            {
                for (int q = 0; q < 36; q++)
                {
                    bool bad = defect && q % 6 < 2 && q / 6 < 2;
                    var basis = bad ? _defect : _normals[(q / 6 + q % 6) % 4];
                    var x = basis.Select(b => b + 0.05f * ((float)_rng.NextDouble() - 0.5f)).ToArray();
                    Unit(x).CopyTo(f.Views[v], q * 16);
                }
            }
            f.Global[0] = 1;
            return f;
        }

        private static float[] Unit(float[] x)
        {
            float n = MathF.Sqrt(x.Sum(v => v * v));
            return x.Select(v => v / n).ToArray();
        }
    }

    [Fact]
    public void Lifted_score_by_hand()
    {
        // One view, 2-D. Elements (1,0) with a = 0.5 and (0,1) with a = 0. Query (1,0):
        // plain nearest distance 0; lifted: min(0² + 0.5², ‖(1,0)-(0,1)‖² + 0²) = min(0.25, 2) -> 0.5.
        var layout = new FeatureLayout(1, 1, [new ViewSpec("t", 1, 2)], 1);
        var coreset = new EdgeInspector.Core.Coreset.PatchCoreset(layout, 1);
        coreset.AddRows([new float[] { 1, 0 }], [0f], 10, false, [0.5f]);
        coreset.AddRows([new float[] { 0, 1 }], [1f], 11, false, [0f]);
        Assert.Equal([0.5f, 0f], coreset.FusedAdjusted()); // one view: the fused score is that view's
        var query = new FrameFeatures(layout);
        query.Views[0][0] = 1;
        var scores = new float[1];
        ScoreMath.NearestDistance(query, coreset.Packed(), scores);
        Assert.Equal(0f, scores[0], 5);
        coreset.Lift = true;
        ScoreMath.NearestDistance(query, coreset.Packed(), scores);
        Assert.Equal(0.5f, scores[0], 5);
        // Query (0.6, 0.8): d² to (1,0) = 0.8 (+0.25 = 1.05), to (0,1) = 0.4 (+0) -> sqrt(0.4).
        query.Views[0][0] = 0.6f;
        query.Views[0][1] = 0.8f;
        ScoreMath.NearestDistance(query, coreset.Packed(), scores);
        Assert.Equal(MathF.Sqrt(0.4f), scores[0], 5);
        // A changed lift is a changed coreset: its version moves (verdicts carry it) and scores follow.
        long version = coreset.Version;
        coreset.SetAdjusted(1, [0.3f]); // (0,1) now lifted: min(1.05, 0.4 + 0.09) -> sqrt(0.49)
        Assert.True(coreset.Version > version);
        ScoreMath.NearestDistance(query, coreset.Packed(), scores);
        Assert.Equal(0.7f, scores[0], 5);
    }

    [Fact]
    public void Filter_mask_drops_high_outliers_within_its_budget()
    {
        // Median 1, MAD 0 would be degenerate; use a spread: robust z of 10 is far above 3.
        var keep = Fslc.FilterMask([1, 1.1f, 0.9f, 1.05f, 0.95f, 10, 9], 3, 1.0 / 7);
        Assert.Equal([true, true, true, true, true, false, true], keep); // budget: floor(7/7) = 1, the highest goes
    }

    [Fact]
    public void Batch_fslc_scores_defect_frames_above_normal_ones_and_excludes_self_matches()
    {
        var line = new SyntheticLine();
        var frames = Enumerable.Range(0, 12).Select(i => line.Frame(defect: i == 5)).ToList();
        var fslc = new Fslc(line.Layout, new FslcOptions { InitFrames = 4, TopN = 2, FilterReferences = 11 });
        var (scores, coreset) = fslc.ScoreBatch(frames);
        float worstNormal = scores.Where((_, i) => i != 5).Max(s => s.Image);
        Assert.True(scores[5].Image > 2 * worstNormal, $"defect {scores[5].Image} vs worst normal {worstNormal}");
        // The defect's own patches may sit in the coreset; scoring the frame must still not match them.
        var score5 = fslc.Score(frames[5], 5, coreset);
        Assert.Equal(scores[5].Image, score5.Image, 5);
    }

    [Fact]
    public void Streaming_warms_up_then_scores_on_arrival_with_a_bounded_coreset()
    {
        var line = new SyntheticLine();
        // The coreset scores (no reservoir): its updates are under test.
        var options = new FslcOptions { Batch = 8, InitFrames = 4, TopN = 2, MaxCoresetPerPatches = 2.0, FilterReferences = 8, ReservoirFrames = 0 };
        var released = 0;
        var engine = new StreamingFslc(line.Layout, options, _ => released++);
        var results = new List<StreamResult>();
        for (int i = 0; i < 7; i++) Assert.Empty(engine.Push(line.Frame(false), i)); // warming up
        var warm = engine.Push(line.Frame(false), 7);
        Assert.Equal(8, warm.Count);
        Assert.All(warm, r => Assert.True(r.WarmUp));
        Assert.True(engine.IsWarm);

        for (int i = 8; i < 40; i++)
        {
            var r = Assert.Single(engine.Push(line.Frame(defect: i % 10 == 3), i));
            Assert.False(r.WarmUp);
            Assert.Equal(i, r.FrameId);
            results.Add(r);
            Assert.True(engine.Coreset.Count <= 2 * 36, $"coreset {engine.Coreset.Count} over its bound");
        }
        var defects = results.Where(r => r.FrameId % 10 == 3).ToList();
        var normals = results.Where(r => r.FrameId % 10 != 3).ToList();
        Assert.All(defects, d => Assert.True(d.Calibrated > normals.Max(n => n.Calibrated), $"defect frame {d.FrameId} calibrated {d.Calibrated}"));
        Assert.All(defects, d => Assert.True(d.Calibrated > options.QuarantineZ));
        Assert.True(engine.Updates >= 3);
        Assert.True(engine.Quarantined >= 3); // the defect frames were kept out of the coreset
        Assert.Equal(8 + 8 * (int)engine.Updates, released); // every frame handed back once it was no longer needed
    }

    [Fact]
    public void Background_updates_swap_in_a_new_coreset_while_frames_keep_being_scored()
    {
        var line = new SyntheticLine();
        var options = new FslcOptions { Batch = 8, InitFrames = 4, TopN = 2, MaxCoresetPerPatches = 2.0, FilterReferences = 8, BackgroundUpdates = true, ReservoirFrames = 0 };
        var released = 0;
        var engine = new StreamingFslc(line.Layout, options, _ => Interlocked.Increment(ref released));
        for (int i = 0; i < 8; i++) engine.Push(line.Frame(false), i);
        Assert.True(engine.IsWarm);
        var results = new List<StreamResult>();
        var versions = new HashSet<long>();
        int id = 8;
        for (int round = 0; round < 4; round++)
        {
            // Seen right after the push that fills the batch: a later push may already find a fast update
            // finished and swap it in, so "pending at the end of the round" would be a race.
            bool started = false;
            for (int k = 0; k < 8; k++, id++)
            {
                var r = Assert.Single(engine.Push(line.Frame(defect: id % 10 == 3), id));
                started |= engine.UpdatePending;
                results.Add(r);
                versions.Add(r.CoresetVersion);
                // The update works on a copy: the coreset that scores is never changed under it.
                Assert.Equal(engine.Coreset.Version, r.CoresetVersion);
                Assert.True(engine.Coreset.Count <= 2 * 36, $"coreset {engine.Coreset.Count} over its bound");
            }
            Assert.True(started, "a full batch starts an update in the background");
            long scoredWith = engine.Coreset.Version;
            // Frames pushed while it runs are scored at once, against the coreset they found.
            var during = Assert.Single(engine.Push(line.Frame(defect: id % 10 == 3), id));
            Assert.True(during.CoresetVersion == scoredWith || !engine.UpdatePending);
            results.Add(during);
            id++;
            engine.CompleteUpdate();
            Assert.Equal(round + 1, engine.Updates);
        }
        engine.CompleteUpdate();
        Assert.False(engine.UpdatePending);
        Assert.True(engine.Updates >= 3, $"{engine.Updates} updates");
        Assert.True(versions.Count >= 2, "no new coreset was ever swapped in");
        Assert.True(engine.Quarantined >= 3);
        var defects = results.Where(r => r.FrameId % 10 == 3).ToList();
        var normals = results.Where(r => r.FrameId % 10 != 3).ToList();
        Assert.All(defects, d => Assert.True(d.Calibrated > normals.Max(n => n.Calibrated), $"defect frame {d.FrameId} calibrated {d.Calibrated}"));
        engine.Reset();
        Assert.False(engine.IsWarm);
    }

    [Fact]
    public void A_clone_is_a_deep_copy()
    {
        var line = new SyntheticLine();
        var engine = new StreamingFslc(line.Layout, new FslcOptions { Batch = 4, InitFrames = 4, TopN = 2, ReservoirFrames = 0 });
        for (int i = 0; i < 4; i++) engine.Push(line.Frame(false), i);
        var original = engine.Coreset;
        var copy = original.Clone();
        Assert.Equal(original.Count, copy.Count);
        Assert.Equal(original.Version, copy.Version);
        Assert.Equal(original.Lift, copy.Lift);
        Assert.True(original.Projected.SequenceEqual(copy.Projected));
        Assert.True(original.Rows(0).SequenceEqual(copy.Rows(0)));
        Assert.True(original.ViewAdjusted.SequenceEqual(copy.ViewAdjusted));
        var keep = new bool[copy.Count];
        keep[0] = true;
        copy.Retain(keep);
        Assert.Equal(1, copy.Count);
        Assert.True(original.Count > 1); // the original is untouched
        Assert.True(copy.Version > original.Version);
    }

    [Fact]
    public void Adjusted_scores_are_re_estimated_as_the_line_shows_a_warmup_pattern_to_be_rare()
    {
        // Warm-up: every other frame shows the same defect, so the warm-up batch takes it for normal
        // (its a(m) is low and it survives the filter). Then the line runs clean: with re-estimation the
        // defect elements' adjusted scores rise and a later defect frame scores higher; without, not.
        (float MaxAdjusted, float Defect) Run(double memory)
        {
            var line = new SyntheticLine();
            // ReservoirFrames 0: the coreset's own scores are under test.
            var options = new FslcOptions { Batch = 8, InitFrames = 8, TopN = 2, FilterReferences = 8, AdjustedMemory = memory, ReservoirFrames = 0 };
            var engine = new StreamingFslc(line.Layout, options);
            for (int i = 0; i < 8; i++) engine.Push(line.Frame(defect: i % 2 == 0), i);
            for (int i = 8; i < 40; i++) engine.Push(line.Frame(false), i);
            Assert.Equal(4, engine.Updates);
            return (engine.Coreset.FusedAdjusted().Max(), Assert.Single(engine.Push(line.Frame(true), 40)).Image);
        }
        var kept = Run(1.0);
        var reestimated = Run(0.5);
        Assert.True(reestimated.MaxAdjusted > 3 * kept.MaxAdjusted, $"max a(m) {reestimated.MaxAdjusted} vs {kept.MaxAdjusted}");
        Assert.True(reestimated.Defect > 1.5f * kept.Defect, $"defect frame {reestimated.Defect} vs {kept.Defect}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Warmup_rebuilds_drop_a_pattern_that_only_the_first_batch_took_for_normal(bool background)
    {
        // The warm-up batch is half defect frames, so its filter keeps the defect as normal. With one
        // warm-up batch those elements stay as anchors; rebuilt over three more clean batches, the defect
        // is rare among the kept frames, the filter drops it, and a later defect frame stands out again.
        (float Defect, float Normal, float Nearest, int Released, List<long> Versions) Run(int warmupBatches)
        {
            var line = new SyntheticLine();
            var options = new FslcOptions
            {
                Batch = 8, InitFrames = 8, TopN = 2, FilterReferences = 32, WarmupBatches = warmupBatches, BackgroundUpdates = background,
                ReservoirFrames = 0, // the coreset's own scores are under test
            };
            int released = 0;
            var engine = new StreamingFslc(line.Layout, options, _ => Interlocked.Increment(ref released));
            for (int i = 0; i < 8; i++) engine.Push(line.Frame(defect: i % 2 == 0), i);
            var versions = new List<long> { engine.Coreset.Version };
            for (int i = 8; i < 40; i++)
            {
                engine.Push(line.Frame(false), i);
                if (i % 8 == 7)
                {
                    engine.CompleteUpdate();
                    versions.Add(engine.Coreset.Version);
                }
            }
            Assert.Equal(4, engine.Updates);
            // Plain nearest distance (no lift) of a defect patch (patch 0, view 0) to the coreset's elements.
            var probe = line.Frame(true);
            var rows = engine.Coreset.Rows(0).ToArray();
            float nearest = float.MaxValue;
            for (int e = 0; e < engine.Coreset.Count; e++)
            {
                float d2 = 0;
                for (int k = 0; k < 16; k++) d2 += MathF.Pow(probe.Views[0][k] - rows[e * 16 + k], 2);
                nearest = MathF.Min(nearest, MathF.Sqrt(d2));
            }
            var scored = Assert.Single(engine.Push(probe, 40));
            Assert.Null(scored.ReferenceFrames); // the coreset scored it
            float defect = scored.Image;
            float normal = Assert.Single(engine.Push(line.Frame(false), 41)).Image;
            return (defect, normal, nearest, released, versions);
        }
        var once = Run(1);
        var rebuilt = Run(4);
        // One batch: defect elements sit in the coreset (near noise level); rebuilt, none is left near it.
        Assert.True(once.Nearest < 0.1f, $"one batch: nearest {once.Nearest}");
        Assert.True(rebuilt.Nearest > 5 * once.Nearest, $"rebuilt: nearest {rebuilt.Nearest} vs {once.Nearest}");
        Assert.True(rebuilt.Defect > 2 * once.Defect, $"defect frame {rebuilt.Defect} vs {once.Defect}");
        Assert.True(rebuilt.Defect > 2 * rebuilt.Normal, $"defect {rebuilt.Defect} vs normal {rebuilt.Normal}");
        // Each rebuild replaces the coreset under a higher version, and once the last one is in, every
        // kept frame has been handed back (40 pushed; the two scored afterwards are still in the batch).
        for (int k = 1; k < rebuilt.Versions.Count; k++) Assert.True(rebuilt.Versions[k] > rebuilt.Versions[k - 1], string.Join(",", rebuilt.Versions));
        Assert.Equal(40, rebuilt.Released);
        Assert.Equal(40, once.Released);
    }

    [Fact]
    public void Reservoir_takes_accepted_frames_only_and_scores_a_defect_by_the_frames_it_is_missing_from()
    {
        // Every 8th frame carries the defect block. Quarantined frames never enter the reservoir, so the
        // defect is missing from every reservoir frame and its patches score at their full distance
        // from the normal directions, while normal patches match within noise.
        var line = new SyntheticLine();
        var engine = new StreamingFslc(line.Layout, new FslcOptions
        {
            Batch = 8, TopN = 2, FilterReferences = 8, ReservoirFrames = 6, ReservoirKeep = 1, ReservoirStride = 2,
        });
        for (int i = 0; i < 8; i++) engine.Push(line.Frame(defect: i % 8 == 4), i);
        // The warm-up fills it with its batch strided to 6 frames (0, 1, 2, 4, 5, 6), scores them against
        // each other, and the frames that stand out leave: the defect frame 4 does.
        var warm = engine.Reservoir!.Ids();
        Assert.Subset(new HashSet<long> { 0, 1, 2, 4, 5, 6 }, warm.ToHashSet());
        Assert.DoesNotContain(4L, warm);
        Assert.True(warm.Length >= 2);
        for (int i = 8; i < 40; i++) engine.Push(line.Frame(defect: i % 8 == 4), i);
        var ids = engine.Reservoir!.Ids();
        Assert.Equal(6, ids.Length);
        Assert.DoesNotContain(ids, id => id % 8 == 4);
        // Stride 2: no two consecutive accepted frames both entered.
        for (int t = 1; t < ids.Length; t++) Assert.True(ids[t] - ids[t - 1] >= 2, string.Join(",", ids));

        var defect = Assert.Single(engine.Push(line.Frame(true), 40));
        // The result names the frames that scored it: the reservoir as it stood.
        Assert.Equal(ids, defect.ReferenceFrames);
        var normal = Assert.Single(engine.Push(line.Frame(false), 41));
        Assert.Equal(ids, normal.ReferenceFrames); // the defect frame was not let in
        Assert.True(defect.Image > 5 * normal.Image, $"defect {defect.Image} vs normal {normal.Image}");
        // The defect block (patches 0, 1, 6, 7) against the rest of the same frame.
        float block = (defect.Patches[0] + defect.Patches[1] + defect.Patches[6] + defect.Patches[7]) / 4;
        Assert.True(block > 5 * defect.Patches[20], $"block {block} vs patch 20 {defect.Patches[20]}");
        Assert.True(defect.Calibrated > 4, $"calibrated {defect.Calibrated}");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.5)]
    public void With_the_reservoir_alone_the_coreset_is_not_updated_and_frames_go_back_at_once(double weight)
    {
        // Weight 1: the coreset scores nothing after the warm-up, so no update runs, every frame is handed
        // back once scored (the reservoir keeps copies) and quarantined frames are still counted. A blend
        // (0.5) still scores with the coreset, which goes on learning every batch.
        var line = new SyntheticLine();
        int released = 0;
        var engine = new StreamingFslc(line.Layout, new FslcOptions
        {
            Batch = 8, TopN = 2, FilterReferences = 8, ReservoirFrames = 6, ReservoirKeep = 1, ReservoirWeight = weight, WarmupBatches = 2,
        }, _ => released++);
        long version = 0;
        int over = 0; // frames scored on arrival whose calibrated score is over κ_q
        for (int i = 0; i < 42; i++)
        {
            foreach (var r in engine.Push(line.Frame(defect: i % 8 == 4), i)) if (!r.WarmUp && r.Calibrated > 2.5f) over++;
            if (i == 7) version = engine.Coreset.Version;
        }
        Assert.True(over >= 4, $"{over} frames over κ_q"); // at least the defect frames 12, 20, 28 and 36
        if (weight == 1)
        {
            Assert.False(engine.CoresetLearns);
            Assert.Equal(0, engine.Updates);
            Assert.Equal(version, engine.Coreset.Version);
            Assert.Equal(42, released);
            Assert.Equal(over, engine.Quarantined);
        }
        else
        {
            // Four updates (frames 8–39; the first a warm-up rebuild); frames 40 and 41 wait, kept whole as
            // reference frames (8 references in a batch of 8), for the next one.
            Assert.True(engine.CoresetLearns);
            Assert.Equal(4, engine.Updates);
            Assert.True(engine.Coreset.Version > version);
            Assert.Equal(40, released);
        }
    }

    [Fact]
    public void Known_good_anchors_are_not_rebuilt_away()
    {
        var line = new SyntheticLine();
        var engine = new StreamingFslc(line.Layout, new FslcOptions { Batch = 8, TopN = 2, FilterReferences = 8, WarmupBatches = 4, ReservoirFrames = 0 });
        engine.SeedKnownGood([line.Frame(false), line.Frame(false), line.Frame(false)]);
        for (int i = 0; i < 24; i++) engine.Push(line.Frame(false), i);
        Assert.Equal(3, engine.Updates);
        var sources = engine.Coreset.Sources.ToArray();
        var anchors = engine.Coreset.Anchors.ToArray();
        Assert.Contains(anchors, a => a);
        // Every anchor is still a known-good element (negative source): no rebuild from line frames.
        for (int e = 0; e < sources.Length; e++) Assert.True(!anchors[e] || sources[e] < 0, $"anchor {e} from line frame {sources[e]}");
    }

    [Fact]
    public void Known_good_elements_keep_their_adjusted_scores()
    {
        var line = new SyntheticLine();
        var engine = new StreamingFslc(line.Layout, new FslcOptions { Batch = 8, TopN = 2, FilterReferences = 8, AdjustedMemory = 0.5, ReservoirFrames = 0 });
        engine.SeedKnownGood([line.Frame(false), line.Frame(false), line.Frame(false)]);
        float[] KnownGood()
        {
            var fused = engine.Coreset.FusedAdjusted();
            var sources = engine.Coreset.Sources.ToArray();
            return fused.Where((_, e) => sources[e] < 0).Order().ToArray();
        }
        var before = KnownGood();
        for (int i = 0; i < 24; i++) engine.Push(line.Frame(defect: i % 3 == 0), i); // the line differs: fresh estimates would too
        Assert.Equal(3, engine.Updates);
        Assert.Equal(before, KnownGood());
    }

    [Fact]
    public void Build_takes_elements_only_from_eligible_patches()
    {
        var line = new SyntheticLine();
        var frames = Enumerable.Range(0, 8).Select(_ => line.Frame(false)).ToList();
        var ids = Enumerable.Range(100, 8).Select(i => (long)i).ToArray();
        var fslc = new Fslc(line.Layout, new FslcOptions { InitFrames = 4, FilterReferences = 7 });
        var eligible = new bool[8 * 36];
        for (int f = 0; f < 8; f++) for (int q = 0; q < 36; q++) eligible[f * 36 + q] = f % 2 == 1; // odd frames only
        var coreset = fslc.Build(frames, ids, eligible: eligible);
        Assert.True(coreset.Count > 0);
        Assert.All(coreset.Sources.ToArray(), s => Assert.Equal(1, s % 2));
        Assert.Throws<ArgumentException>(() => fslc.Build(frames, ids, eligible: new bool[5]));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Cold_start_keeps_a_frame_the_reference_finds_anomalous_out_of_the_warmup_coreset(bool coldStart)
    {
        var line = new SyntheticLine();
        var engine = new StreamingFslc(line.Layout, new FslcOptions { Batch = 8, InitFrames = 8, TopN = 2, FilterReferences = 8, ColdStartReference = coldStart, ReservoirFrames = 0 });
        for (int i = 0; i < 8; i++) engine.Push(line.Frame(defect: i == 3), i);
        Assert.True(engine.IsWarm);
        // Without the reference, k-center picks the defect frame's far-out patches (the filter may keep
        // some of its normal ones); with it, the frame's MuSc image score stands out and none of it is used.
        Assert.Equal(!coldStart, engine.Coreset.Sources.ToArray().Contains(3));
    }

    [Fact]
    public void Known_good_frames_start_scoring_at_once()
    {
        var line = new SyntheticLine();
        var engine = new StreamingFslc(line.Layout, new FslcOptions { Batch = 8, TopN = 2 });
        engine.SeedKnownGood([line.Frame(false), line.Frame(false), line.Frame(false)]);
        Assert.True(engine.IsWarm);
        Assert.All(engine.Coreset.Anchors.ToArray(), Assert.True);
        // Calibrated from the known-good frames (each scored without its own elements): the very
        // first line frame already gets a meaningful calibrated score.
        Assert.True(engine.IsCalibrated);
        var first = Assert.Single(engine.Push(line.Frame(true), 0));
        var second = Assert.Single(engine.Push(line.Frame(false), 1));
        Assert.True(first.Image > 2 * second.Image);
        Assert.True(first.Calibrated > 3, $"defect calibrated {first.Calibrated}");
        Assert.True(second.Calibrated < first.Calibrated);

        var single = new StreamingFslc(line.Layout, new FslcOptions { Batch = 8, TopN = 2 });
        single.SeedKnownGood([line.Frame(false)]);
        Assert.True(single.IsWarm);
        Assert.False(single.IsCalibrated); // one score is no scale
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Warmup_elements_are_anchors_only_when_configured(bool anchors)
    {
        var line = new SyntheticLine();
        var engine = new StreamingFslc(line.Layout, new FslcOptions { Batch = 6, InitFrames = 3, TopN = 2, WarmupAnchors = anchors, ReservoirFrames = 0 });
        for (int i = 0; i < 6; i++) engine.Push(line.Frame(false), i);
        Assert.True(engine.IsWarm);
        Assert.True(engine.Coreset.Count > 0);
        Assert.All(engine.Coreset.Anchors.ToArray(), a => Assert.Equal(anchors, a));
    }

    [Fact]
    public void Reset_drops_the_coreset_and_starts_cold()
    {
        var line = new SyntheticLine();
        var engine = new StreamingFslc(line.Layout, new FslcOptions { Batch = 4, TopN = 2 });
        for (int i = 0; i < 4; i++) engine.Push(line.Frame(false), i);
        Assert.True(engine.IsWarm);
        Assert.True(engine.Reservoir!.Count >= 2);
        engine.Reset();
        Assert.False(engine.IsWarm);
        Assert.Equal(0, engine.Coreset.Count);
        Assert.Equal(0, engine.Reservoir.Count);
        Assert.Empty(engine.Push(line.Frame(false), 10));
    }
}
