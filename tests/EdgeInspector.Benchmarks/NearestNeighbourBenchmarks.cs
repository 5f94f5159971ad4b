using BenchmarkDotNet.Attributes;
using EdgeInspector.Core.Numerics;
using Microsoft.ML.OnnxRuntime;

namespace EdgeInspector.Benchmarks;

/// <summary>
/// The nearest-neighbour kernel against ONNX Runtime's MatMul on the same shapes: a frame's patches
/// (784 = 28x28) against one reference frame (MuSc) or a coreset of 4P (streaming FSLC), at the two view
/// widths of ResNet50 stage2/stage3. FLOPs are 2·M·N·K for both; the kernel also reduces every row and
/// column by max, which MatMul does not. GFLOP/s = 2·M·N·K / mean time (printed after the table).
/// </summary>
[MemoryDiagnoser]
public class NearestNeighbourBenchmarks
{
    private float[] _queries = [];
    private float[] _refsTransposed = [];
    private PackedPanels _packed = new();
    private float[] _rowMax = [];
    private float[] _colMax = [];
    private InferenceSession? _ort1, _ort2;
    private OrtValue? _a, _b;

    [Params(784)]
    public int Queries { get; set; }

    [Params(784, 3136)]
    public int References { get; set; }

    [Params(512, 1024)]
    public int Dim { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        _queries = Enumerable.Range(0, Queries * Dim).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var refs = Enumerable.Range(0, References * Dim).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        _packed = PackedPanels.Pack(refs, Dim);
        _refsTransposed = new float[Dim * References];
        for (int r = 0; r < References; r++)
        {
            for (int k = 0; k < Dim; k++) _refsTransposed[k * References + r] = refs[r * Dim + k];
        }
        _rowMax = new float[Queries];
        _colMax = new float[References];
        var model = EdgeInspector.Testing.OnnxModelWriter.MatMul();
        _ort1 = new InferenceSession(model, new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 });
        _ort2 = new InferenceSession(model, new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1 });
        _a = OrtValue.CreateTensorValueFromMemory(_queries, [Queries, Dim]);
        _b = OrtValue.CreateTensorValueFromMemory(_refsTransposed, [Dim, References]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _a?.Dispose();
        _b?.Dispose();
        _ort1?.Dispose();
        _ort2?.Dispose();
    }

    [Benchmark(Description = "MaxDot 1 thread")]
    public float Kernel1()
    {
        _rowMax.AsSpan().Fill(float.NegativeInfinity);
        _colMax.AsSpan().Fill(float.NegativeInfinity);
        MaxDot.Accumulate(_queries, _packed, _rowMax, _colMax);
        return _rowMax[0];
    }

    [Benchmark(Description = "ORT MatMul 1 thread")]
    public long Ort1() => RunOrt(_ort1!);

    [Benchmark(Description = "MaxDot 2 threads")]
    public float Kernel2()
    {
        // Two halves of the queries, as the scorers split work across cores (row maxima only).
        _rowMax.AsSpan().Fill(float.NegativeInfinity);
        int half = Queries / 2 * Dim;
        Parallel.Invoke(
            () => MaxDot.Accumulate(_queries.AsSpan(0, half), _packed, _rowMax.AsSpan(0, half / Dim)),
            () => MaxDot.Accumulate(_queries.AsSpan(half), _packed, _rowMax.AsSpan(half / Dim)));
        return _rowMax[0];
    }

    [Benchmark(Description = "ORT MatMul 2 threads")]
    public long Ort2() => RunOrt(_ort2!);

    private long RunOrt(InferenceSession session)
    {
        using var results = session.Run(new RunOptions(), ["A", "B"], [_a!, _b!], ["C"]);
        return results[0].GetTensorTypeAndShape().ElementCount;
    }
}
