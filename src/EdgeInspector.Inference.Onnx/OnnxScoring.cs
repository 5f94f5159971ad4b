using EdgeInspector.Core.Numerics;
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
        : this(provider, options, provider != "tensorrt" || OnnxBackbone.CudaUsable(OrtEnv.Instance().GetAvailableProviders()))
    {
    }

    /// <summary>
    /// As above, and whether the store graph writes the reservoir's buffers in place (<paramref name="storeInPlace"/>)
    /// or into a second set: the tests run the second way on the CPU, where it is otherwise only for TensorRT
    /// without the CUDA provider.
    /// </summary>
    internal OnnxScoring(string provider, BackboneOptions options, bool storeInPlace)
    {
        if (provider is not ("tensorrt" or "cuda" or "cpu")) throw new ArgumentException($"'{provider}' is not one of tensorrt, cuda, cpu.", nameof(provider));
        Provider = provider;
        _options = options;
        StoreInPlace = storeInPlace;
    }

    /// <summary>The execution provider the graphs run on.</summary>
    public string Provider { get; }

    /// <summary>
    /// True when the store graph's outputs are bound to its inputs, so that a stored frame writes only its slot
    /// and each view has one buffer of each kind. The CPU and CUDA kernels of ScatterND and ScatterElements copy
    /// their input to their output only when the two differ. TensorRT's engines are not asked to write a
    /// buffer they read: with the backbone on TensorRT the store graph runs on the CUDA provider (a scatter
    /// gains nothing from TensorRT), and where the CUDA provider cannot start each view keeps two buffers and
    /// every stored frame copies the reservoir into the other.
    /// </summary>
    public bool StoreInPlace { get; }

    /// <summary>Makes the kernel of one reservoir (a <see cref="ReservoirKernelFactory"/>).</summary>
    public IReservoirKernel Create(FeatureLayout layout, int capacity, int keep, int topN, int radius)
    {
        var shape = ScoringShape.For(layout, capacity, keep, topN, radius);
        var (score, store) = Sessions(shape);
        return new OnnxReservoirKernel(shape, score, store, Provider == "cpu" ? null : DeviceMemory(), StoreInPlace);
    }

    private OrtMemoryInfo DeviceMemory() => new(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, _options.DeviceId, OrtMemType.Default);

    private (InferenceSession Score, InferenceSession Store) Sessions(ScoringShape shape)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_sessions.TryGetValue(shape.Key, out var pair)) return pair;
            using var so = OnnxBackbone.SessionOptionsFor(Provider, _options, tf32: false);
            using var storeOptions = StoreInPlace && Provider == "tensorrt" ? OnnxBackbone.SessionOptionsFor("cuda", _options, tf32: false) : null;
            var score = new InferenceSession(ScoringGraphs.Score(shape), so);
            try
            {
                pair = (score, new InferenceSession(ScoringGraphs.Store(shape), storeOptions ?? so));
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
/// One reservoir's slots as buffers per view in the provider's memory (<c>[R, D, K]</c>, and with a window the
/// whole frames' grids, <see cref="ScoringShape.GridDims"/>). The store graph writes a slot into them in place
/// (<see cref="OnnxScoring.StoreInPlace"/>), or reads the current ones and writes spares, which then become
/// current. A frame is scored by the score graph over the current buffers; only its views go in and only its
/// patch scores and image score come out.
/// </summary>
internal sealed class OnnxReservoirKernel : IReservoirKernel
{
    private readonly ScoringShape _shape;
    private readonly InferenceSession _score, _store;
    private readonly OrtAllocator? _deviceAllocator;
    private readonly OrtMemoryInfo? _deviceMemory;
    private readonly OrtValue[] _current; // per view: kept rows, then (windowed) whole frames
    private readonly OrtValue[]? _spare; // the same, where the store graph does not write in place
    private readonly float[][] _rows; // per view, one slot's rows transposed to [D, K]: the store graph's input
    private readonly float[][] _frames; // per view (windowed), one slot's whole frame at its levels: the store graph's input
    private readonly string[] _scoreInputs, _storeInputs, _storeOutputs;
    private readonly int _buffers; // per view: 1, or 2 with a window
    private static readonly string[] ScoreOutputs = ["patches", "image"];

    public OnnxReservoirKernel(ScoringShape shape, InferenceSession score, InferenceSession store, OrtMemoryInfo? deviceMemory, bool storeInPlace)
    {
        _shape = shape;
        _score = score;
        _store = store;
        _deviceMemory = deviceMemory;
        int views = shape.Dims.Length;
        _buffers = shape.Windowed ? 2 : 1;
        _current = new OrtValue[views * _buffers];
        _spare = storeInPlace ? null : new OrtValue[views * _buffers];
        _rows = new float[views][];
        _frames = new float[views][];
        var scoreInputs = new List<string> { "excluded", "k" };
        var storeInputs = new List<string> { "slot" };
        var storeOutputs = new List<string>();
        try
        {
            if (deviceMemory is not null) _deviceAllocator = new OrtAllocator(score, deviceMemory);
            for (int v = 0; v < views; v++)
            {
                long[] dims = [shape.Capacity, shape.Dims[v], shape.Keep];
                _current[v * _buffers] = Allocate(dims);
                if (_spare is not null) _spare[v * _buffers] = Allocate(dims);
                _rows[v] = new float[shape.Dims[v] * shape.Keep];
                scoreInputs.AddRange([$"query_{v}", $"reservoir_{v}"]);
                storeInputs.AddRange([$"reservoir_{v}", $"rows_{v}"]);
                storeOutputs.Add($"updated_{v}");
                if (!shape.Windowed) continue;
                long[] grid = shape.GridDims(v);
                _frames[v] = new float[shape.Patches * shape.Dims[v]];
                _current[v * 2 + 1] = Allocate(grid);
                if (_spare is not null) _spare[v * 2 + 1] = Allocate(grid);
                scoreInputs.Add($"grid_{v}");
                storeInputs.AddRange([$"grid_{v}", $"frame_{v}"]);
                storeOutputs.Add($"updated_grid_{v}");
            }
            _scoreInputs = [.. scoreInputs];
            _storeInputs = [.. storeInputs];
            _storeOutputs = [.. storeOutputs];
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

    public void Store(int slot, IReadOnlyList<float[]> rows, int count, IReadOnlyList<float[]>? frame)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, _shape.Capacity);
        if (count < 1 || count > _shape.Keep) throw new ArgumentOutOfRangeException(nameof(count), count, $"A slot holds 1 to {_shape.Keep} rows.");
        if (_shape.Windowed != frame is not null) throw new ArgumentException(_shape.Windowed ? "This kernel searches a window: the frame's whole views are needed." : "This kernel searches no window.", nameof(frame));
        int views = _shape.Dims.Length, keep = _shape.Keep;
        var inputs = new OrtValue[_storeInputs.Length];
        var owned = new List<OrtValue>();
        try
        {
            int at = 0;
            owned.Add(inputs[at++] = OrtValue.CreateTensorValueFromMemory(new long[] { slot }, [1, 1]));
            for (int v = 0; v < views; v++)
            {
                int d = _shape.Dims[v];
                var dst = _rows[v];
                ScoringGraphs.SlotRows(rows[v], count, d, keep, dst);
                inputs[at++] = _current[v * _buffers];
                owned.Add(inputs[at++] = OrtValue.CreateTensorValueFromMemory(dst, [1, d, keep]));
                if (frame is null) continue;
                if (frame[v].Length < _shape.Patches * d) throw new ArgumentException($"View {v}: {frame[v].Length} floats, a whole frame has {_shape.Patches * d}.", nameof(frame));
                inputs[at++] = _current[v * 2 + 1];
                // The values the managed search holds in bytes: both paths then search the same frame.
                WindowGrid.Quantise(frame[v].AsSpan(0, _shape.Patches * d), _frames[v]);
                owned.Add(inputs[at++] = OrtValue.CreateTensorValueFromMemory(_frames[v], [1, _shape.Height, _shape.Width, d]));
            }
            using var run = new RunOptions();
            _store.Run(run, _storeInputs, inputs, _storeOutputs, _spare ?? _current);
        }
        finally
        {
            foreach (var o in owned) o.Dispose();
        }
        if (_spare is null) return;
        for (int i = 0; i < _current.Length; i++) (_current[i], _spare[i]) = (_spare[i], _current[i]);
    }

    public float Score(FrameFeatures frame, ReadOnlySpan<bool> included, int k, int topN, Span<float> patches)
    {
        if (Math.Clamp(topN, 1, _shape.Patches) != _shape.TopN) throw new ArgumentException($"This kernel's graph averages the top {_shape.TopN} patches, not {topN}.", nameof(topN));
        if (included.Length < _shape.Capacity) throw new ArgumentException($"{included.Length} slot flags for {_shape.Capacity} slots.", nameof(included));
        int views = _shape.Dims.Length;
        var excluded = new bool[_shape.Capacity];
        for (int s = 0; s < excluded.Length; s++) excluded[s] = !included[s];
        var inputs = new OrtValue[_scoreInputs.Length];
        var owned = new List<OrtValue>();
        try
        {
            int at = 0;
            owned.Add(inputs[at++] = OrtValue.CreateTensorValueFromMemory(excluded, [_shape.Capacity, 1]));
            owned.Add(inputs[at++] = OrtValue.CreateTensorValueFromMemory(new long[] { Math.Clamp(k, 1, _shape.Capacity) }, [1]));
            for (int v = 0; v < views; v++)
            {
                owned.Add(inputs[at++] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, frame.Views[v].AsMemory(0, _shape.Patches * _shape.Dims[v]), [_shape.Patches, _shape.Dims[v]]));
                inputs[at++] = _current[v * _buffers];
                if (_shape.Windowed) inputs[at++] = _current[v * 2 + 1];
            }
            using var run = new RunOptions();
            using var results = _score.Run(run, _scoreInputs, inputs, ScoreOutputs);
            results[0].GetTensorDataAsSpan<float>().CopyTo(patches);
            return results[1].GetTensorDataAsSpan<float>()[0];
        }
        finally
        {
            foreach (var o in owned) o.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var v in _current) v?.Dispose();
        foreach (var v in _spare ?? []) v?.Dispose();
        _deviceAllocator?.Dispose();
        _deviceMemory?.Dispose();
    }
}
