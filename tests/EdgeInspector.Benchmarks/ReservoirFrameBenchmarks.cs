using BenchmarkDotNet.Attributes;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;

namespace EdgeInspector.Benchmarks;

/// <summary>
/// A whole scored frame against a full reservoir at the defaults (64 frames, a 28×28 grid, six views of 128
/// dimensions, 49 kept patches, a 5×5 window), random unit rows: <c>FrameReservoir.Score</c> on the machine's
/// cores and on one, and <c>Add</c>, the accepted frame's entry (its k-center selection and its grids), which
/// the engine runs after each accepted frame's score; and a frame of three views (a model with one tap), which
/// on two cores splits unevenly by views alone. Beside <see cref="ReservoirScoringBenchmarks"/>' steps, what the
/// whole costs.
/// </summary>
public class ReservoirFrameBenchmarks
{
    private const int Frames = 64;
    private FrameReservoir _reservoir = null!, _single = null!, _oneTap = null!;
    private FrameFeatures[] _queries = [];
    private readonly float[] _scores = new float[28 * 28];
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var views = new List<ViewSpec>();
        foreach (var tap in new[] { "stage2", "stage3" })
            foreach (int a in new[] { 1, 3, 5 }) views.Add(new ViewSpec(tap, a, 128));
        var layout = new FeatureLayout(28, 28, views, 16);
        var oneTap = new FeatureLayout(28, 28, views.Take(3).ToList(), 16);
        var rng = new Random(1);
        FrameFeatures Frame() => RandomFrame(layout);
        FrameFeatures RandomFrame(FeatureLayout of)
        {
            var f = new FrameFeatures(of);
            foreach (var v in f.Views)
            {
                for (int q = 0; q < of.Patches; q++)
                {
                    var row = v.AsSpan(q * 128, 128);
                    for (int k = 0; k < 128; k++) row[k] = (float)rng.NextDouble() - 0.5f;
                    ViewBuilder.NormaliseInPlace(row);
                }
            }
            return f;
        }
        var o = EngineOptions.Default;
        var selection = new SparseProjection(layout, o.SelectionDimsPerView, o.Seed);
        _reservoir = new FrameReservoir(layout, selection, Frames, 49, o.IntervalFraction, radius: o.ReservoirWindow);
        _single = new FrameReservoir(layout, selection, Frames, 49, o.IntervalFraction, radius: o.ReservoirWindow) { Parallelism = new ParallelOptions { MaxDegreeOfParallelism = 1 } };
        for (int i = 0; i < Frames; i++)
        {
            var f = Frame();
            _reservoir.Add(f, i);
            _single.Add(f, i);
        }
        _queries = [Frame(), Frame(), Frame(), Frame()];
        _oneTap = new FrameReservoir(oneTap, new SparseProjection(oneTap, o.SelectionDimsPerView, o.Seed), Frames, 49, o.IntervalFraction, radius: o.ReservoirWindow);
        for (int i = 0; i < Frames; i++) _oneTap.Add(RandomFrame(oneTap), i);
        _oneTapQuery = RandomFrame(oneTap);
    }

    private FrameFeatures _oneTapQuery = null!;

    [Benchmark(Description = "score a frame of three views (one tap) against 64 frames, every core")]
    public float ScoreOneTap()
    {
        _oneTap.Score(_oneTapQuery, -1, _scores, 10, out float image);
        return image;
    }

    [Benchmark(Description = "score a frame: 6 views against 64 frames, every core")]
    public float Score()
    {
        _reservoir.Score(_queries[_next++ & 3], -1, _scores, 10, out float image);
        return image;
    }

    [Benchmark(Description = "score a frame: the same on one core")]
    public float ScoreOneCore()
    {
        _single.Score(_queries[_next++ & 3], -1, _scores, 10, out float image);
        return image;
    }

    [Benchmark(Description = "add a frame: k-center selection and grids")]
    public int Add()
    {
        _reservoir.Add(_queries[_next & 3], 1000 + _next++);
        return _reservoir.Count;
    }
}
