using BenchmarkDotNet.Attributes;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Benchmarks;

/// <summary>
/// One view of one scored frame against a full reservoir, at the defaults (64 frames, a 28×28 grid, 128
/// dimensions, 49 kept patches, a 5×5 window), one thread: each step of <c>FrameReservoir.Score</c> apart.
/// The engine runs six views, spread over the cores. The subset search runs on bytes; the same search in
/// floats (<see cref="MaxDot"/>, the kernel of the MuSc and FSLC yardsticks) is timed beside it. The window is timed twice: over 64 reservoir frames
/// (7.3 MB of byte grids), and over one frame 64 times, which stays in the core's cache. In the engine the six
/// views' grids, 44 MB, are read once per scored frame, by both cores at once.
/// </summary>
public class ReservoirScoringBenchmarks
{
    private const int H = 28, W = 28, P = H * W, D = 128, Frames = 64, Keep = 49, Radius = 2;
    private float[] _query = [];
    private readonly WindowQuery _windowQuery = new();
    private float[][] _kept = [];
    private PackedPanels _queryPacked = new();
    private float[] _keptMax = new float[Keep];
    private WindowGrid[] _grids = [];
    private KeptRows[] _keptRows = [];
    private float[] _dots = [];
    private float[] _scores = [];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        float[] Unit(int rows)
        {
            var a = new float[rows * D];
            for (int i = 0; i < rows; i++)
            {
                var row = a.AsSpan(i * D, D);
                for (int k = 0; k < D; k++) row[k] = (float)rng.NextDouble() - 0.5f;
                ViewBuilder.NormaliseInPlace(row);
            }
            return a;
        }
        _query = Unit(P);
        _windowQuery.Pack(_query, H, W, D);
        _kept = new float[Frames][];
        _queryPacked = PackedPanels.Pack(_query, D);
        _grids = new WindowGrid[Frames];
        _keptRows = new KeptRows[Frames];
        var first = new int[Keep];
        for (int c = 0; c < Keep; c++) first[c] = c;
        for (int t = 0; t < Frames; t++)
        {
            var frame = Unit(P);
            _kept[t] = frame.AsSpan(0, Keep * D).ToArray();
            _grids[t] = WindowGrid.Pack(frame, H, W, D, Radius);
            _keptRows[t] = KeptRows.Gather(_grids[t], first);
        }
        _dots = new float[Frames * P];
        for (int i = 0; i < _dots.Length; i++) _dots[i] = (float)(rng.NextDouble() * 2 - 1);
        _scores = new float[P];
    }

    [Benchmark(Description = "subset: 784 patches against 49 kept rows in bytes, 64 frames")]
    public float Subset()
    {
        for (int t = 0; t < Frames; t++)
        {
            var best = _dots.AsSpan(t * P, P);
            best.Fill(float.NegativeInfinity);
            KeptMaxDot.Accumulate(_windowQuery, _keptRows[t], best);
        }
        return _dots[0];
    }

    [Benchmark(Description = "subset in floats: 49 kept rows against 784 packed, 64 frames")]
    public float SubsetFloats()
    {
        for (int t = 0; t < Frames; t++)
        {
            var best = _dots.AsSpan(t * P, P);
            best.Fill(float.NegativeInfinity);
            MaxDot.Accumulate(_kept[t], _queryPacked, _keptMax, best);
        }
        return _dots[0];
    }

    [Benchmark(Description = "window: 64 frames")]
    public float Window()
    {
        for (int t = 0; t < Frames; t++) WindowMaxDot.Accumulate(_windowQuery, _grids[t], _dots.AsSpan(t * P, P));
        return _dots[0];
    }

    [Benchmark(Description = "window: one frame 64 times, cached")]
    public float WindowCached()
    {
        for (int t = 0; t < Frames; t++) WindowMaxDot.Accumulate(_windowQuery, _grids[0], _dots.AsSpan(t * P, P));
        return _dots[0];
    }

    [Benchmark(Description = "query: one view at its levels, both layouts")]
    public float PackQuery()
    {
        _windowQuery.Pack(_query, H, W, D);
        return _windowQuery.Step;
    }

    [Benchmark(Description = "grid: one view of a frame entering the reservoir")]
    public float PackGrid() => WindowGrid.Pack(_query, H, W, D, Radius).Step;

    [Benchmark(Description = "interval average, sifted")]
    public float IntervalAverage()
    {
        Stats.IntervalAverageOfDots(_dots, Frames, Stats.IntervalCount(Frames, 0.3), _scores);
        return _scores[0];
    }

    [Benchmark(Description = "interval average, plain twin")]
    public float IntervalAveragePlain()
    {
        Stats.IntervalAverageOfDotsScalar(_dots, Frames, Stats.IntervalCount(Frames, 0.3), _scores);
        return _scores[0];
    }
}
