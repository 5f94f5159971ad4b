using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace EdgeInspector.Inference.Onnx;

/// <summary>
/// The reservoir's scoring on an ONNX Runtime execution provider: the <see cref="ScoringGraphs"/> as
/// sessions on the backbone's provider, and a <see cref="IReservoirKernel"/> per reservoir whose slots live
/// in that provider's memory. One instance serves every reservoir of a camera (the tiles' included):
/// reservoirs of one shape share a pair of sessions.
/// </summary>
public sealed class OnnxScoring : IDisposable
{
    private readonly BackboneOptions _options;
    private readonly Dictionary<string, (InferenceSession Score, InferenceSession Store)> _sessions = [];
    private readonly object _gate = new();
    private bool _disposed;

    /// <summary>Scoring on <paramref name="provider"/> ("tensorrt", "cuda" or "cpu": the backbone's), with the backbone's settings.</summary>
    public OnnxScoring(string provider, BackboneOptions options)
    {
        if (provider is not ("tensorrt" or "cuda" or "cpu")) throw new ArgumentException($"'{provider}' is not one of tensorrt, cuda, cpu.", nameof(provider));
        Provider = provider;
        _options = options;
    }

    /// <summary>The execution provider the graphs run on.</summary>
    public string Provider { get; }

    /// <summary>Makes the kernel of one reservoir (a <see cref="ReservoirKernelFactory"/>).</summary>
    public IReservoirKernel Create(FeatureLayout layout, int capacity, int keep, int topN)
    {
        var shape = ScoringShape.For(layout, capacity, keep, topN);
        var (score, store) = Sessions(shape);
        return new OnnxReservoirKernel(shape, score, store, Provider == "cpu" ? null : DeviceMemory());
    }

    private OrtMemoryInfo DeviceMemory() => new(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, _options.DeviceId, OrtMemType.Default);

    private (InferenceSession Score, InferenceSession Store) Sessions(ScoringShape shape)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_sessions.TryGetValue(shape.Key, out var pair)) return pair;
            using var so = OnnxBackbone.SessionOptionsFor(Provider, _options);
            var score = new InferenceSession(ScoringGraphs.Score(shape), so);
            try
            {
                pair = (score, new InferenceSession(ScoringGraphs.Store(shape), so));
            }
            catch
            {
                score.Dispose();
                throw;
            }
            _sessions[shape.Key] = pair;
            return pair;
        }
    }

    /// <summary>Frees the sessions. Kernels made here must be disposed first (their engines own them).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var (score, store) in _sessions.Values)
            {
                score.Dispose();
                store.Dispose();
            }
            _sessions.Clear();
        }
    }
}

/// <summary>
/// One reservoir's slots as two buffers per view in the provider's memory (<c>[R, D, K]</c>): the store graph
/// reads the current one and writes the spare, which then becomes current. A frame is scored by the score
/// graph over the current buffers; only its views go in and only its patch scores and image score come out.
/// </summary>
internal sealed class OnnxReservoirKernel : IReservoirKernel
{
    private readonly ScoringShape _shape;
    private readonly InferenceSession _score, _store;
    private readonly OrtAllocator? _deviceAllocator;
    private readonly OrtMemoryInfo? _deviceMemory;
    private readonly OrtValue[] _current, _spare;
    private readonly float[][] _rows; // per view, one slot's rows transposed to [D, K]: the store graph's input
    private readonly string[] _scoreInputs, _storeInputs, _storeOutputs;
    private static readonly string[] ScoreOutputs = ["patches", "image"];

    public OnnxReservoirKernel(ScoringShape shape, InferenceSession score, InferenceSession store, OrtMemoryInfo? deviceMemory)
    {
        _shape = shape;
        _score = score;
        _store = store;
        _deviceMemory = deviceMemory;
        int views = shape.Dims.Length;
        _current = new OrtValue[views];
        _spare = new OrtValue[views];
        _rows = new float[views][];
        _scoreInputs = new string[2 + 2 * views];
        _scoreInputs[0] = "excluded";
        _scoreInputs[1] = "k";
        _storeInputs = new string[1 + 2 * views];
        _storeInputs[0] = "slot";
        _storeOutputs = new string[views];
        try
        {
            if (deviceMemory is not null) _deviceAllocator = new OrtAllocator(score, deviceMemory);
            for (int v = 0; v < views; v++)
            {
                long[] dims = [shape.Capacity, shape.Dims[v], shape.Keep];
                _current[v] = Allocate(dims);
                _spare[v] = Allocate(dims);
                _rows[v] = new float[shape.Dims[v] * shape.Keep];
                _scoreInputs[2 + 2 * v] = $"query_{v}";
                _scoreInputs[3 + 2 * v] = $"reservoir_{v}";
                _storeInputs[1 + 2 * v] = $"reservoir_{v}";
                _storeInputs[2 + 2 * v] = $"rows_{v}";
                _storeOutputs[v] = $"updated_{v}";
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Path => ScoringPath.Onnx;

    /// <summary>A slot buffer: on the device, or zeroed host memory on the CPU provider.</summary>
    private OrtValue Allocate(long[] dims)
    {
        var value = OrtValue.CreateAllocatedTensorValue(_deviceAllocator ?? OrtAllocator.DefaultInstance, TensorElementType.Float, dims);
        if (_deviceAllocator is null) value.GetTensorMutableDataAsSpan<float>().Clear();
        return value;
    }

    public void Store(int slot, IReadOnlyList<float[]> rows, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, _shape.Capacity);
        if (count < 1 || count > _shape.Keep) throw new ArgumentOutOfRangeException(nameof(count), count, $"A slot holds 1 to {_shape.Keep} rows.");
        int views = _current.Length, keep = _shape.Keep;
        var inputs = new OrtValue[1 + 2 * views];
        try
        {
            inputs[0] = OrtValue.CreateTensorValueFromMemory(new long[] { slot }, [1, 1]);
            for (int v = 0; v < views; v++)
            {
                int d = _shape.Dims[v];
                var dst = _rows[v];
                ScoringGraphs.SlotRows(rows[v], count, d, keep, dst);
                inputs[1 + 2 * v] = _current[v];
                inputs[2 + 2 * v] = OrtValue.CreateTensorValueFromMemory(dst, [1, d, keep]);
            }
            using var run = new RunOptions();
            _store.Run(run, _storeInputs, inputs, _storeOutputs, _spare);
        }
        finally
        {
            inputs[0]?.Dispose();
            for (int v = 0; v < views; v++) inputs[2 + 2 * v]?.Dispose();
        }
        for (int v = 0; v < views; v++) (_current[v], _spare[v]) = (_spare[v], _current[v]);
    }

    public float Score(FrameFeatures frame, ReadOnlySpan<bool> included, int k, int topN, Span<float> patches)
    {
        if (Math.Clamp(topN, 1, _shape.Patches) != _shape.TopN) throw new ArgumentException($"This kernel's graph averages the top {_shape.TopN} patches, not {topN}.", nameof(topN));
        if (included.Length < _shape.Capacity) throw new ArgumentException($"{included.Length} slot flags for {_shape.Capacity} slots.", nameof(included));
        int views = _current.Length;
        var excluded = new bool[_shape.Capacity];
        for (int s = 0; s < excluded.Length; s++) excluded[s] = !included[s];
        var inputs = new OrtValue[2 + 2 * views];
        try
        {
            inputs[0] = OrtValue.CreateTensorValueFromMemory(excluded, [_shape.Capacity, 1]);
            inputs[1] = OrtValue.CreateTensorValueFromMemory(new long[] { Math.Clamp(k, 1, _shape.Capacity) }, [1]);
            for (int v = 0; v < views; v++)
            {
                inputs[2 + 2 * v] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, frame.Views[v].AsMemory(0, _shape.Patches * _shape.Dims[v]), [_shape.Patches, _shape.Dims[v]]);
                inputs[3 + 2 * v] = _current[v];
            }
            using var run = new RunOptions();
            using var results = _score.Run(run, _scoreInputs, inputs, ScoreOutputs);
            results[0].GetTensorDataAsSpan<float>().CopyTo(patches);
            return results[1].GetTensorDataAsSpan<float>()[0];
        }
        finally
        {
            inputs[0]?.Dispose();
            inputs[1]?.Dispose();
            for (int v = 0; v < views; v++) inputs[2 + 2 * v]?.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var v in _current) v?.Dispose();
        foreach (var v in _spare) v?.Dispose();
        _deviceAllocator?.Dispose();
        _deviceMemory?.Dispose();
    }
}
