using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Scoring;

namespace EdgeInspector.Core.Tests;

public sealed class ReservoirTests
{
    // One view, 2-D, a 1×2 grid: every frame is two unit vectors.
    private static readonly FeatureLayout Tiny = new(1, 2, [new ViewSpec("t", 1, 2)], 1);

    private static FrameFeatures Frame(float x0, float y0, float x1, float y1)
    {
        var f = new FrameFeatures(Tiny);
        float[] v = [x0, y0, x1, y1];
        v.CopyTo(f.Views[0], 0);
        return f;
    }

    private static FrameReservoir Reservoir(int capacity, int keep, double fraction) =>
        new(Tiny, new SparseProjection(Tiny, 2, 7), capacity, keep, fraction);

    [Fact]
    public void Interval_average_over_frames_by_hand()
    {
        // Frames A (id 1): (1,0),(0,1); B (2): (0,1),(0,1); C (3): (−1,0),(0,1).
        // Query patch (1,0): nearest in A 0, in B √2, in C min(2, √2) = √2.
        // Query patch (0,1): 0 in every frame.
        var r = Reservoir(capacity: 3, keep: 2, fraction: 0.67);
        r.Add(Frame(1, 0, 0, 1), 1);
        r.Add(Frame(0, 1, 0, 1), 2);
        r.Add(Frame(-1, 0, 0, 1), 3);
        var q = Frame(1, 0, 0, 1);
        var s = new float[2];

        // Three frames, k = floor(0.67·3) = 2: mean of {0, √2} = √2/2.
        Assert.True(r.Score(q, 9, s));
        Assert.Equal(MathF.Sqrt(2) / 2, s[0], 5);
        Assert.Equal(0f, s[1], 5);

        // Scored as frame 1: its own entry is left out; two frames, k = 1: min(√2, √2). The frames that
        // scored it are named, oldest first.
        var sources = new List<long>();
        Assert.True(r.Score(q, 1, s, sources));
        Assert.Equal([2L, 3L], sources);
        Assert.Equal(MathF.Sqrt(2), s[0], 5);
        Assert.Equal(0f, s[1], 5);
    }

    [Fact]
    public void Oldest_frame_leaves_a_full_reservoir()
    {
        var r = Reservoir(capacity: 2, keep: 2, fraction: 0.3);
        r.Add(Frame(1, 0, 0, 1), 1);
        r.Add(Frame(0, 1, 0, 1), 2);
        r.Add(Frame(-1, 0, 0, 1), 3);
        Assert.Equal([2L, 3L], r.Ids());
        // Frame 1, the only one holding (1,0), is gone: that patch now scores √2 (k = 1 of 2).
        var s = new float[2];
        var sources = new List<long>();
        Assert.True(r.Score(Frame(1, 0, 0, 1), 9, s, sources));
        Assert.Equal(MathF.Sqrt(2), s[0], 5);
        // Oldest first across the ring's wrap: frame 3 sits in slot 0, frame 2 in slot 1.
        Assert.Equal([2L, 3L], sources);

        r.Clear();
        Assert.Equal(0, r.Count);
        Assert.False(r.Score(Frame(1, 0, 0, 1), 9, s)); // nothing to score against
    }

    [Fact]
    public void Removing_frames_keeps_the_others_in_age_order_and_the_ring_working()
    {
        var r = Reservoir(capacity: 3, keep: 2, fraction: 0.3);
        r.Add(Frame(1, 0, 0, 1), 1);
        r.Add(Frame(0, 1, 0, 1), 2);
        r.Add(Frame(-1, 0, 0, 1), 3);
        r.Add(Frame(0, 1, 0, 1), 4); // wraps: 1 leaves, 4 takes its slot
        Assert.Equal(1, r.RemoveWhere(id => id == 3));
        Assert.Equal([2L, 4L], r.Ids());
        r.Add(Frame(1, 0, 0, 1), 5);
        Assert.Equal([2L, 4L, 5L], r.Ids());
        r.Add(Frame(1, 0, 0, 1), 6); // full again: the oldest (2) leaves
        Assert.Equal([4L, 5L, 6L], r.Ids());
        // Scores see what is held: (1,0) is in 5 and 6, so its patch is 0 away (k = floor(0.3·3) = 0, at least 1).
        var s = new float[2];
        Assert.True(r.Score(Frame(1, 0, 0, 1), 9, s));
        Assert.Equal(0f, s[0], 5);
    }

    [Fact]
    public void Keep_thins_each_frame_by_k_center()
    {
        // Keeping one patch of (1,0),(0,1): k-center starts at patch 0, so only (1,0) is held and a
        // (0,1) query is √2 away; keeping both, it is 0 away.
        var s = new float[2];
        var one = Reservoir(capacity: 1, keep: 1, fraction: 0.3);
        one.Add(Frame(1, 0, 0, 1), 1);
        Assert.True(one.Score(Frame(0, 1, 0, 1), 9, s));
        Assert.Equal(MathF.Sqrt(2), s[0], 5);
        Assert.Equal(MathF.Sqrt(2), s[1], 5);
        var both = Reservoir(capacity: 1, keep: 2, fraction: 0.3);
        both.Add(Frame(1, 0, 0, 1), 1);
        Assert.True(both.Score(Frame(0, 1, 0, 1), 9, s));
        Assert.Equal(0f, s[0], 5);
    }

    [Fact]
    public void Interval_average_matches_a_plain_loop_on_random_frames()
    {
        // 5×5 grid, two views of awkward width 19, 7 frames kept whole: the kernel path against brute force.
        var layout = new FeatureLayout(5, 5, [new ViewSpec("a", 1, 19), new ViewSpec("b", 3, 19)], 1);
        var drawn = RandomFrames.Draw(layout, 8, 3);
        var frames = drawn[..7];
        var r = new FrameReservoir(layout, new SparseProjection(layout, 4, 7), 7, 25, 0.3);
        for (int i = 0; i < frames.Length; i++) r.Add(frames[i], i);
        var query = drawn[7];
        var fast = new float[25];
        Assert.True(r.Score(query, 2, fast)); // frame 2 left out: six frames, k = 1

        // The search runs on levels (KeptRows, WindowQuery): each kept frame's view at the step of its largest
        // magnitude, the query's at its own, a dot of those values, the distance √(2 − 2·dot).
        float[] Levels(float[] values, float step) => values.Select(x => WindowGrid.Level(x, 1f / step) * step).ToArray();
        for (int q = 0; q < 25; q++)
        {
            double fused = 0;
            for (int v = 0; v < 2; v++)
            {
                var qv = Levels(query.Views[v], WindowGrid.QueryStepOf(query.Views[v]));
                var perFrame = new List<double>();
                for (int i = 0; i < frames.Length; i++)
                {
                    if (i == 2) continue;
                    var fv = Levels(frames[i].Views[v], WindowGrid.StepOf(frames[i].Views[v]));
                    double best = double.MaxValue;
                    for (int t = 0; t < 25; t++)
                    {
                        double dot = 0;
                        for (int k = 0; k < 19; k++) dot += qv[q * 19 + k] * fv[t * 19 + k];
                        best = Math.Min(best, Math.Sqrt(Math.Max(0, 2 - 2 * dot)));
                    }
                    perFrame.Add(best);
                }
                fused += perFrame.Min() / 2; // floor(0.3·6) = 1: the smallest
            }
            Assert.Equal(fused, fast[q], 1e-4);
        }
    }
    /// <summary>
    /// The plain twin of a reservoir's searches for view <paramref name="v"/>: for each patch of the query, its nearest
    /// distance in every held frame, the nearer of the frame's kept patches and the (2r + 1)² window around the patch
    /// (a dot of 0 outside the grid), sorted. The searches run on bytes (WindowGrid, KeptRows): the query and each held
    /// frame are taken at their levels, each value level × step.
    /// </summary>
    private static List<double>[] NearestPerFrame(IReadOnlyList<ReservoirFrame> held, float[] query, int v, int h, int w, int d, int radius)
    {
        int p = h * w;
        float step = WindowGrid.QueryStepOf(query);
        var levels = query.Select(x => WindowGrid.Level(x, 1f / step) * (double)step).ToArray();
        var grids = held.Select(f =>
        {
            var g = new float[p * d];
            WindowGrid.Quantise(f.Rows[v], g);
            return g;
        }).ToArray();
        double Dot(int q, int i, int t)
        {
            double sum = 0;
            for (int k = 0; k < d; k++) sum += levels[q * d + k] * grids[i][t * d + k];
            return sum;
        }
        var nearest = new List<double>[p];
        for (int q = 0; q < p; q++)
        {
            int qy = q / w, qx = q % w;
            nearest[q] = [];
            for (int i = 0; i < held.Count; i++)
            {
                double best = double.NegativeInfinity;
                foreach (int t in held[i].Kept!) best = Math.Max(best, Dot(q, i, t));
                for (int y = qy - radius; y <= qy + radius; y++)
                    for (int x = qx - radius; x <= qx + radius; x++)
                        best = Math.Max(best, y >= 0 && y < h && x >= 0 && x < w ? Dot(q, i, y * w + x) : 0);
                nearest[q].Add(Math.Sqrt(Math.Max(0, 2 - 2 * best)));
            }
            nearest[q].Sort();
        }
        return nearest;
    }

    [Fact]
    public void A_reservoir_longer_than_one_work_item_scores_every_frame_of_every_view()
    {
        // 37 frames are three work items per view (16, 16 and 5 frames) and two views make six: each patch's
        // score is still the mean over views of the interval average (k = floor(0.3·37) = 11) of its nearest
        // distance in every frame, the nearer of the subset's and the 5×5 window's, all at the searches' levels.
        int h = 4, w = 5, p = h * w, frames = 37;
        int[] dims = [9, 6];
        var layout = new FeatureLayout(h, w, [new ViewSpec("a", 1, dims[0]), new ViewSpec("b", 3, dims[1])], 1);
        var drawn = RandomFrames.Draw(layout, frames + 1, 37);
        Assert.True(frames > 2 * FrameReservoir.FramesPerItem && frames % FrameReservoir.FramesPerItem != 0);
        var r = new FrameReservoir(layout, new SparseProjection(layout, 4, 7), frames, 3, 0.3, radius: 2);
        var added = drawn[..frames];
        for (int i = 0; i < frames; i++) r.Add(added[i], i);
        var held = r.Export();
        var query = drawn[frames];
        var fast = new float[p];
        Assert.True(r.Score(query, -1, fast));

        int kk = Stats.IntervalCount(frames, 0.3);
        Assert.Equal(11, kk);
        var expected = new double[p];
        for (int v = 0; v < dims.Length; v++)
        {
            var perFrame = NearestPerFrame(held, query.Views[v], v, h, w, dims[v], 2);
            for (int q = 0; q < p; q++) expected[q] += perFrame[q].Take(kk).Average() / dims.Length;
        }
        for (int q = 0; q < p; q++) Assert.Equal(expected[q], fast[q], 4);

        // One core gives the same scores to the bit: the items only split the work.
        var single = new FrameReservoir(layout, new SparseProjection(layout, 4, 7), frames, 3, 0.3, radius: 2) { Parallelism = new ParallelOptions { MaxDegreeOfParallelism = 1 } };
        for (int i = 0; i < frames; i++) single.Add(added[i], i);
        var one = new float[p];
        Assert.True(single.Score(query, -1, one));
        Assert.Equal(fast, one);
    }



    private static readonly FeatureLayout TwoViews = new(4, 5, [new ViewSpec("a", 1, 6), new ViewSpec("b", 3, 9)], 1);

    [Fact]
    public void An_exported_frame_keeps_its_values_after_it_leaves_the_reservoir()
    {
        // A snapshot writer reads an export on another thread while the line goes on: two turns of the ring
        // later, the exported frames still read as they were, unpacked and as held.
        var frames = RandomFrames.Draw(TwoViews, 9, 5);
        var r = new FrameReservoir(TwoViews, new SparseProjection(TwoViews, 4, 7), 3, 4, 0.5, radius: 1);
        for (int i = 0; i < 3; i++) r.Add(frames[i], i);
        var held = r.Export();
        var then = new List<ReservoirFrame>();
        foreach (var f in held) then.Add(f);
        var levels = new List<(float Step, sbyte[] Levels)>();
        var asHeld = Assert.IsAssignableFrom<IHeldFrames>(held);
        for (int t = 0; t < 3; t++)
        {
            for (int v = 0; v < 2; v++)
            {
                var l = new sbyte[asHeld.LengthOf(t, v)];
                levels.Add((asHeld.CopyLevels(t, v, l), l));
            }
        }
        for (int i = 3; i < 9; i++) r.Add(frames[i], i);
        Assert.Equal([6L, 7, 8], r.Ids());
        for (int t = 0; t < 3; t++)
        {
            var now = held[t];
            Assert.Equal(then[t].Id, now.Id);
            Assert.Equal(t, asHeld.IdOf(t));
            Assert.Equal(then[t].Kept, asHeld.KeptOf(t));
            for (int v = 0; v < 2; v++)
            {
                Assert.Equal(then[t].Rows[v], now.Rows[v]);
                var l = new sbyte[asHeld.LengthOf(t, v)];
                Assert.Equal(levels[t * 2 + v].Step, asHeld.CopyLevels(t, v, l));
                Assert.Equal(levels[t * 2 + v].Levels, l);
                // The levels are the unpacked values over the step.
                for (int i = 0; i < l.Length; i++) Assert.Equal(then[t].Rows[v][i], l[i] * levels[t * 2 + v].Step);
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void With_a_window_the_nearest_distance_is_the_nearer_of_the_subset_and_the_window(int radius)
    {
        // 5×6 grid, one view of width 11, 4 of 30 patches kept: each frame's nearest distance is the smaller of
        // the kept subset's and the (2r + 1)² window's around the patch (a dot of 0 outside the grid). Both search
        // the frame at its grid's levels.
        int h = 5, w = 6, d = 11, p = h * w;
        var layout = new FeatureLayout(h, w, [new ViewSpec("a", 1, d)], 1);
        var drawn = RandomFrames.Draw(layout, 6, 11 + radius);
        var frames = drawn[..5];
        var r = new FrameReservoir(layout, new SparseProjection(layout, 4, 7), 5, 4, 0.5, radius: radius);
        Assert.Equal(radius, r.Radius);
        for (int i = 0; i < frames.Length; i++) r.Add(frames[i], i);
        var held = r.Export();
        Assert.All(held, f => Assert.Equal(4, f.Kept!.Length));
        Assert.All(held, f => Assert.Equal(p * d, f.Rows[0].Length));
        var query = drawn[5];
        var fast = new float[p];
        Assert.True(r.Score(query, 99, fast)); // five frames, k = floor(0.5·5) = 2

        var nearest = NearestPerFrame(held, query.Views[0], 0, h, w, d, radius);
        for (int q = 0; q < p; q++) Assert.Equal((nearest[q][0] + nearest[q][1]) / 2, fast[q], 4);

        // Without the window the same reservoir scores no lower anywhere, and higher somewhere.
        var subset = new FrameReservoir(layout, new SparseProjection(layout, 4, 7), 5, 4, 0.5);
        for (int i = 0; i < frames.Length; i++) subset.Add(frames[i], i);
        var plain = new float[p];
        Assert.True(subset.Score(query, 99, plain));
        // Up to rounding: without a window a kept row is at the levels of the kept rows' largest magnitude, not
        // the whole frame's, so its dots differ by at most a step per term (the bound of KeptMaxDotTests), and a
        // distance near √2 by about as much.
        float slack = 0;
        foreach (var f in frames) slack = Math.Max(slack, WindowGrid.StepOf(f.Views[0]));
        slack *= 2 * MathF.Sqrt(d);
        for (int q = 0; q < p; q++) Assert.True(plain[q] >= fast[q] - slack, $"patch {q}: {plain[q]} without the window, {fast[q]} with it; slack {slack}");
        Assert.Contains(Enumerable.Range(0, p), q => plain[q] > fast[q] + 1e-3f);

        // A frame exported whole comes back whole: the same scores from a reservoir built by import.
        var imported = new FrameReservoir(layout, new SparseProjection(layout, 4, 7), 5, 4, 0.5, radius: radius);
        foreach (var f in held) imported.Import(f);
        var again = new float[p];
        Assert.True(imported.Score(query, 99, again));
        Assert.Equal(fast, again);
        // Only the kept rows, where the window needs the whole frame: refused, naming the frame.
        var e = Assert.Throws<ArgumentException>(() => imported.Import(new ReservoirFrame(7, [new float[4 * d]])));
        Assert.Contains("Frame 7", e.Message);
    }
}
