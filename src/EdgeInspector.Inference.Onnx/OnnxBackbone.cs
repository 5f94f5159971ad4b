using EdgeInspector.Core.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;

namespace EdgeInspector.Inference.Onnx;

/// <summary>A backbone that cannot be used as configured. The message names the file, field and what was expected.</summary>
public sealed class BackboneException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The pretrained backbone as an ONNX Runtime session: takes a normalised NCHW batch, returns the
/// configured taps, and turns them into per-frame views. Every configuration problem (missing model,
/// unknown tap, refused input size) is found at construction by a probe run, before any frame.
/// </summary>
public sealed class OnnxBackbone : IDisposable
{
    private readonly InferenceSession _session;
    private readonly BackboneOptions _options;
    private readonly string _inputName;
    private readonly int[][] _tapShapes; // per tap: C, H, W at the configured input size

    /// <summary>Loads and probes the model; logs the provider chosen and every provider skipped, with why.</summary>
    public OnnxBackbone(BackboneOptions options, ILogger? logger = null)
    {
        logger ??= NullLogger.Instance;
        _options = options;
        if (string.IsNullOrWhiteSpace(options.ModelPath)) throw new BackboneException("model.path: no model path is set.");
        if (!File.Exists(options.ModelPath)) throw new BackboneException($"model.path: the model file '{options.ModelPath}' does not exist.");
        if (options.Taps.Length == 0) throw new BackboneException("model.taps: at least one tap (a named model output) is needed.");
        if (options.Mean.Length != 3 || options.Std.Length != 3) throw new BackboneException("model.mean/std: three values each (one per channel) are expected.");
        if (options.ChannelOrder is not ("rgb" or "bgr")) throw new BackboneException($"model.channel_order: '{options.ChannelOrder}' is not 'rgb' or 'bgr'.");
        if (options.Degrees.Length == 0) throw new BackboneException("backbone.degrees: at least one aggregation degree is needed.");
        foreach (int a in options.Degrees)
        {
            if (a < 1 || a % 2 == 0) throw new BackboneException($"backbone.degrees: {a} is not an odd number >= 1.");
        }

        (_session, ExecutionProvider) = OpenSession(Candidates(options, OrtEnv.Instance().GetAvailableProviders(), logger), name =>
        {
            var so = SessionOptionsFor(name, options, tf32: true);
            try
            {
                return new InferenceSession(options.ModelPath, so);
            }
            catch
            {
                so.Dispose();
                throw;
            }
        }, options, logger);

        try
        {
            if (_session.InputMetadata.Count != 1) throw new BackboneException($"model.path: '{options.ModelPath}' has {_session.InputMetadata.Count} inputs; one image input is expected.");
            _inputName = _session.InputMetadata.Keys.First();
            CheckDeclaredInput(_session.InputMetadata[_inputName].Dimensions);
            var outputs = _session.OutputMetadata.Keys.ToArray();
            foreach (string tap in options.Taps)
            {
                if (!outputs.Contains(tap))
                {
                    throw new BackboneException($"model.taps: '{tap}' is not an output of '{options.ModelPath}'. Outputs: {string.Join(", ", outputs)}.");
                }
            }
            string globalTap = options.GlobalTap ?? options.Taps[^1];
            if (!options.Taps.Contains(globalTap)) throw new BackboneException($"backbone.global_tap: '{globalTap}' is not one of the taps [{string.Join(", ", options.Taps)}].");

            // Probe: one zero image at the configured size tells whether the model accepts it and the tap shapes.
            _tapShapes = Probe();
            int gh = 0, gw = 0;
            foreach (var s in _tapShapes)
            {
                if (s[1] * s[2] > gh * gw) (gh, gw) = (s[1], s[2]);
            }
            var views = new List<ViewSpec>();
            for (int t = 0; t < options.Taps.Length; t++)
            {
                foreach (int a in options.Degrees) views.Add(new ViewSpec(options.Taps[t], a, _tapShapes[t][0]));
            }
            int globalIndex = Array.IndexOf(options.Taps, globalTap);
            if (gh < 2 || gw < 2)
            {
                throw new BackboneException($"model.input_width/input_height: at {options.InputWidth}x{options.InputHeight} the taps' finest grid is {gw}x{gh}; at least 2x2 patches are needed (use a larger input).");
            }
            Layout = new FeatureLayout(gh, gw, views, _tapShapes[globalIndex][0]);
            ModelHash = ComputeHash(options.ModelPath);
            logger.LogInformation("Backbone {Model} (sha256 {Hash}) on {Provider}: input {W}x{H}, grid {GH}x{GW}, {Views} views",
                options.ModelPath, ModelHash[..12], ExecutionProvider, options.InputWidth, options.InputHeight, gh, gw, views.Count);
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <summary>The execution provider the session runs on.</summary>
    public string ExecutionProvider { get; }

    /// <summary>The feature layout this backbone produces.</summary>
    public FeatureLayout Layout { get; }

    /// <summary>SHA-256 of the model file (hex), published with verdicts.</summary>
    public string ModelHash { get; }

    /// <summary>The options in force.</summary>
    public BackboneOptions Options => _options;

    /// <summary>
    /// The providers of <c>model.providers</c>, in order, that this ONNX Runtime build includes and whose
    /// libraries load here; each one left out is logged with the reason.
    /// </summary>
    private static List<string> Candidates(BackboneOptions options, string[] available, ILogger logger)
    {
        var candidates = new List<string>();
        foreach (string wanted in options.ExecutionProviders)
        {
            string name = wanted.ToLowerInvariant();
            string ortName = name switch
            {
                "tensorrt" => "TensorrtExecutionProvider",
                "cuda" => "CUDAExecutionProvider",
                "cpu" => "CPUExecutionProvider",
                _ => throw new BackboneException($"model.providers: '{wanted}' is not one of tensorrt, cuda, cpu."),
            };
            if (!available.Contains(ortName))
            {
                logger.LogWarning("Execution provider {Provider} skipped: this ONNX Runtime build does not include it (available: {Available})", name, string.Join(", ", available));
                continue;
            }
            if (name != "cpu" && ProviderLibraries.Missing(name) is { } missing)
            {
                logger.LogWarning("Execution provider {Provider} skipped: {Reason}", name, missing);
                continue;
            }
            candidates.Add(name);
        }
        return candidates;
    }

    /// <summary>
    /// The session on the first candidate it can be created on. A GPU provider can load and still fail
    /// when the session is made (a driver older than its CUDA, no free device memory, a TensorRT engine
    /// that does not build): that provider is skipped with the reason, as one whose library is missing
    /// is, and the next is tried, so that a PC with a broken GPU setup still inspects on the CPU instead of
    /// failing at every restart. On the CPU provider a failure is the model's own.
    /// </summary>
    internal static (InferenceSession Session, string Provider) OpenSession(
        IReadOnlyList<string> candidates, Func<string, InferenceSession> open, BackboneOptions options, ILogger logger)
    {
        string? lastReason = null;
        foreach (string name in candidates)
        {
            try
            {
                return (open(name), name);
            }
            catch (OnnxRuntimeException e) when (name == "cpu")
            {
                throw new BackboneException($"model.path: '{options.ModelPath}' could not be loaded as an ONNX model: {e.Message}", e);
            }
            catch (Exception e) when (name != "cpu" && e is not BackboneException)
            {
                lastReason = $"{name}: {e.Message}";
                logger.LogWarning("Execution provider {Provider} skipped: a session could not be created on it: {Reason}", name, e.Message);
            }
        }
        throw new BackboneException($"model.providers: none of [{string.Join(", ", options.ExecutionProviders)}] is usable here{(lastReason is null ? "" : $" (last failure: {lastReason})")}; this ONNX Runtime build has {string.Join(", ", OrtEnv.Instance().GetAvailableProviders())}. Add 'cpu' as the last choice.");
    }

    /// <summary>
    /// Session options that run on <paramref name="provider"/>, with the backbone's threads: what the
    /// backbone's session is tried under, and what the scoring graphs run under beside it (on the provider
    /// the backbone settled on, <see cref="ExecutionProvider"/>). <paramref name="tf32"/>: whether the CUDA
    /// provider may round float products' inputs to TF32 (10 bits of mantissa) on GPUs that have it
    /// (<see cref="CudaOptions"/>).
    /// </summary>
    public static SessionOptions SessionOptionsFor(string provider, BackboneOptions options, bool tf32)
    {
        var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = options.InterOpThreads,
        };
        NoSpinning(so);
        try
        {
            Append(so, provider, options, OrtEnv.Instance().GetAvailableProviders(), tf32);
            return so;
        }
        catch
        {
            so.Dispose();
            throw;
        }
    }

    /// <summary>
    /// ONNX Runtime's pool threads spin for a while after each run, waiting for more work. Beside it the managed
    /// stages (views, scoring, the next frame's decode) need those same cores, so the sessions here yield them at
    /// once instead (docs/decisions/0011 has the measurement). EDGEINSPECTOR_ORT_SPIN=1 restores the spinning.
    /// </summary>
    private static void NoSpinning(SessionOptions so)
    {
        if (Environment.GetEnvironmentVariable("EDGEINSPECTOR_ORT_SPIN") == "1") return;
        so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
    }

    /// <summary>
    /// The CUDA provider's options: the device, and TF32 on or off. ONNX Runtime's CUDA provider rounds the
    /// inputs of float matrix products and convolutions to TF32 by default on GPUs from Ampere on (a Jetson
    /// Orin, an RTX 30 or later, an H100). The backbone keeps that: its features carry far less precision
    /// than TF32 drops, and it is most of the GPU's work. The views and scoring graphs turn it off: they are
    /// the managed path's twin, held to it within 1e-5 (views) and 1e-4 (image scores), and TF32 moves a
    /// unit vector's dot products by about 1e-4, which near a distance of 0 is 1e-2 in a patch score.
    /// </summary>
    internal static Dictionary<string, string> CudaOptions(int deviceId, bool tf32) => new()
    {
        ["device_id"] = deviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["use_tf32"] = tf32 ? "1" : "0",
    };

    /// <summary>True when the CUDA provider can start beside TensorRT: this build has it and its libraries load.</summary>
    internal static bool CudaUsable(string[] available) => available.Contains("CUDAExecutionProvider") && ProviderLibraries.Missing("cuda") is null;

    private static void AppendCuda(SessionOptions so, int deviceId, bool tf32)
    {
        using var cuda = new OrtCUDAProviderOptions();
        cuda.UpdateOptions(CudaOptions(deviceId, tf32));
        so.AppendExecutionProvider_CUDA(cuda);
    }

    private static void Append(SessionOptions so, string name, BackboneOptions options, string[] available, bool tf32)
    {
        switch (name)
        {
            case "tensorrt":
                using (var trt = new OrtTensorRTProviderOptions())
                {
                    Directory.CreateDirectory(options.TensorRtCacheDir);
                    trt.UpdateOptions(new Dictionary<string, string>
                    {
                        ["device_id"] = options.DeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["trt_fp16_enable"] = options.TensorRtFp16 ? "1" : "0",
                        ["trt_engine_cache_enable"] = "1",
                        ["trt_engine_cache_path"] = options.TensorRtCacheDir,
                    });
                    so.AppendExecutionProvider_Tensorrt(trt);
                }
                // CUDA behind TensorRT takes the nodes TensorRT cannot.
                if (CudaUsable(available)) AppendCuda(so, options.DeviceId, tf32);
                break;
            case "cuda":
                AppendCuda(so, options.DeviceId, tf32);
                break;
            case "cpu":
                break;
            default:
                throw new BackboneException($"model.providers: '{name}' is not one of tensorrt, cuda, cpu.");
        }
    }

    /// <summary>A model with a fixed input shape states it; a mismatch is named before the probe runs.</summary>
    private void CheckDeclaredInput(int[] dims)
    {
        string want = $"Nx3x{_options.InputHeight}x{_options.InputWidth}";
        if (dims.Length != 4) throw new BackboneException($"model.path: '{_options.ModelPath}' takes a rank-{dims.Length} input; [batch, 3, height, width] is expected.");
        if (dims[1] > 0 && dims[1] != 3) throw new BackboneException($"model.path: '{_options.ModelPath}' takes {dims[1]} channels; 3 are fed.");
        if ((dims[2] > 0 && dims[2] != _options.InputHeight) || (dims[3] > 0 && dims[3] != _options.InputWidth))
        {
            throw new BackboneException($"model.input_width/input_height: '{_options.ModelPath}' has a fixed input of {dims[2]}x{dims[3]} (height x width); the configuration feeds {want}. Set input width/height to {dims[3]}x{dims[2]}.");
        }
    }

    private int[][] Probe()
    {
        var input = new float[3 * _options.InputHeight * _options.InputWidth];
        try
        {
            using var results = RunBackbone(input, 1);
            var shapes = new int[_options.Taps.Length][];
            for (int t = 0; t < shapes.Length; t++)
            {
                var shape = results[t].GetTensorTypeAndShape().Shape;
                if (shape.Length != 4) throw new BackboneException($"model.taps: '{_options.Taps[t]}' has shape [{string.Join(",", shape)}]; [batch, channels, height, width] is expected.");
                shapes[t] = [(int)shape[1], (int)shape[2], (int)shape[3]];
            }
            return shapes;
        }
        catch (OnnxRuntimeException e)
        {
            throw new BackboneException($"model.input_width/input_height: '{_options.ModelPath}' refuses an input of 1x3x{_options.InputHeight}x{_options.InputWidth}: {e.Message}", e);
        }
    }

    private static string ComputeHash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    /// <summary>Floats per preprocessed image (3 × H × W).</summary>
    public int ImageSize => 3 * _options.InputHeight * _options.InputWidth;

    /// <summary>
    /// Runs <paramref name="count"/> preprocessed images held in <paramref name="batch"/> (count × 3 × H × W)
    /// and writes each frame's views into <paramref name="outputs"/>: in <see cref="Layout"/>, or projected by
    /// <paramref name="projector"/> (built from <see cref="Layout"/>) into its target layout. Returns the
    /// backbone and view-building times.
    /// </summary>
    /// <remarks>With <paramref name="viewsOnGraph"/>, the views are built by the views graph
    /// (<see cref="ScoringGraphs.Views"/>) on the backbone's provider, fed the taps as the backbone left them,
    /// instead of by the managed <see cref="ViewBuilder"/>, its plain twin.</remarks>
    public (TimeSpan Backbone, TimeSpan Features) Extract(float[] batch, int count, IReadOnlyList<FrameFeatures> outputs, ViewProjector? projector = null, bool viewsOnGraph = false)
    {
        var t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        using var results = RunBackbone(batch, count);
        var t1 = System.Diagnostics.Stopwatch.GetTimestamp();
        if (viewsOnGraph)
        {
            BuildViewsOnGraph(results, count, outputs, projector);
            return (System.Diagnostics.Stopwatch.GetElapsedTime(t0, t1), System.Diagnostics.Stopwatch.GetElapsedTime(t1));
        }
        BuildViews(Copy(results), count, outputs, projector);
        var t2 = System.Diagnostics.Stopwatch.GetTimestamp();
        return (System.Diagnostics.Stopwatch.GetElapsedTime(t0, t1), System.Diagnostics.Stopwatch.GetElapsedTime(t1, t2));
    }

    /// <summary>The backbone on <paramref name="count"/> preprocessed images in <paramref name="batch"/>: its taps, in <see cref="BackboneOptions.Taps"/>' order.</summary>
    private IDisposableReadOnlyCollection<OrtValue> RunBackbone(float[] batch, int count)
    {
        if (batch.Length < count * ImageSize) throw new ArgumentException($"Batch buffer holds {batch.Length} floats, {count} images need {count * ImageSize}.");
        using var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, batch.AsMemory(0, count * ImageSize), [count, 3, _options.InputHeight, _options.InputWidth]);
        using var run = new RunOptions();
        return _session.Run(run, [_inputName], [value], _options.Taps);
    }

    /// <summary>The taps' values copied out of ONNX Runtime, one array per tap.</summary>
    private static float[][] Copy(IReadOnlyList<OrtValue> taps)
    {
        var data = new float[taps.Count][];
        for (int t = 0; t < data.Length; t++) data[t] = taps[t].GetTensorDataAsSpan<float>().ToArray();
        return data;
    }

    /// <summary>
    /// Each of <paramref name="count"/> images' views from its taps (<paramref name="taps"/>: per tap, count × C × h × w)
    /// by the managed <see cref="ViewBuilder"/>, written into <paramref name="outputs"/>: projected by
    /// <paramref name="projector"/> when given. The plain twin of the views graph.
    /// </summary>
    public void BuildViews(float[][] taps, int count, IReadOnlyList<FrameFeatures> outputs, ViewProjector? projector)
    {
        int n = _options.Taps.Length;
        Parallel.For(0, count, () => new ViewBuilder(Layout, _options.Taps, _options.GlobalTap ?? _options.Taps[^1], projector), (i, _, builder) =>
        {
            var tensors = new TapTensor[n];
            for (int t = 0; t < n; t++)
            {
                var s = _tapShapes[t];
                int size = s[0] * s[1] * s[2];
                tensors[t] = new TapTensor(taps[t].AsMemory(i * size, size), s[0], s[1], s[2]);
            }
            builder.Build(tensors, outputs[i]);
            return builder;
        }, _ => { });
    }

    private readonly Dictionary<string, (InferenceSession Session, string[] Outputs)> _viewGraphs = [];
    private readonly object _viewGraphsGate = new();

    /// <summary>The views graph's session for <paramref name="projector"/> (built once per projected width, on the backbone's provider).</summary>
    private (InferenceSession Session, string[] Outputs) ViewGraph(ViewProjector? projector)
    {
        if (projector is not null && projector.Source != Layout) throw new ArgumentException("The projector was built for another layout.", nameof(projector));
        string key = projector is null ? "full" : string.Join(',', projector.Target.Views.Select(v => v.Dim)) + $"/seed {projector.Seed}";
        lock (_viewGraphsGate)
        {
            if (_viewGraphs.TryGetValue(key, out var graph)) return graph;
            var model = ViewsModel(projector);
            using var so = SessionOptionsFor(ExecutionProvider, _options, tf32: false);
            var outputs = new string[Layout.Views.Count + 1];
            for (int v = 0; v < Layout.Views.Count; v++) outputs[v] = $"view_{v}";
            outputs[^1] = "global";
            graph = (new InferenceSession(model, so), outputs);
            _viewGraphs[key] = graph;
            return graph;
        }
    }

    /// <summary>The views graph for <paramref name="projector"/> (null: full width) at this backbone's taps, as an ONNX model.</summary>
    public byte[] ViewsModel(ViewProjector? projector)
    {
        var shapes = new ScoringGraphs.TapShape[_options.Taps.Length];
        for (int t = 0; t < shapes.Length; t++) shapes[t] = new(_options.Taps[t], _tapShapes[t][0], _tapShapes[t][1], _tapShapes[t][2]);
        return ScoringGraphs.Views(Layout, shapes, _options.GlobalTap ?? _options.Taps[^1], projector);
    }

    /// <summary>
    /// The taps of <paramref name="count"/> preprocessed images in <paramref name="batch"/> as the backbone gives
    /// them, one array per configured tap (count × C × h × w, with <see cref="TapShape"/>): the views graph's inputs.
    /// </summary>
    public float[][] Taps(float[] batch, int count)
    {
        using var results = RunBackbone(batch, count);
        return Copy(results);
    }

    /// <summary>Tap <paramref name="t"/>'s shape for one image: channels, height, width.</summary>
    public (int Channels, int Height, int Width) TapShape(int t) => (_tapShapes[t][0], _tapShapes[t][1], _tapShapes[t][2]);

    private void BuildViewsOnGraph(IReadOnlyList<OrtValue> taps, int count, IReadOnlyList<FrameFeatures> outputs, ViewProjector? projector)
    {
        var (session, names) = ViewGraph(projector);
        var target = projector?.Target ?? Layout;
        using var run = new RunOptions();
        using var views = session.Run(run, _options.Taps, [.. taps], names);
        int p = Layout.Patches;
        for (int v = 0; v < target.Views.Count; v++)
        {
            int size = p * target.Views[v].Dim;
            var data = views[v].GetTensorDataAsSpan<float>();
            for (int i = 0; i < count; i++) data.Slice(i * size, size).CopyTo(outputs[i].Views[v]);
        }
        var global = views[^1].GetTensorDataAsSpan<float>();
        int g = Layout.GlobalDim;
        for (int i = 0; i < count; i++) global.Slice(i * g, g).CopyTo(outputs[i].Global);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_viewGraphsGate)
        {
            foreach (var (session, _) in _viewGraphs.Values) session.Dispose();
            _viewGraphs.Clear();
        }
        _session.Dispose();
    }
}
