using EdgeInspector.Core.Features;
using EdgeInspector.Imaging;
using EdgeInspector.Inference.Onnx;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Integration.Tests;

public sealed class BackboneTests
{
    private static BackboneOptions ResNet => new() { ModelPath = Shared.Model("resnet50v2_features.onnx"), ExecutionProviders = ["cpu"] };

    [Fact]
    public void Default_resnet_gives_six_views_on_the_stage2_grid()
    {
        using var backbone = new OnnxBackbone(ResNet);
        Assert.Equal("cpu", backbone.ExecutionProvider);
        Assert.Equal(28, backbone.Layout.GridHeight);
        Assert.Equal(28, backbone.Layout.GridWidth);
        Assert.Equal(["stage2/a1", "stage2/a3", "stage2/a5", "stage3/a1", "stage3/a3", "stage3/a5"], backbone.Layout.Views.Select(v => v.ToString()));
        Assert.Equal(1024, backbone.Layout.GlobalDim);
        Assert.Equal("9186103ef358c0bb6eeadb4e381a7c8dceac72e05cc2ab670e110cd70e5d4968", backbone.ModelHash);
    }

    [Fact]
    public void Unavailable_providers_are_skipped_with_a_reason_and_cpu_is_used()
    {
        // No GPU and no CUDA here. The GPU build ships the CUDA and TensorRT providers: each is skipped
        // with one line naming a library it needs that does not load. The CPU build has neither.
        var log = new ListLogger();
        using var backbone = new OnnxBackbone(ResNet with { ExecutionProviders = ["tensorrt", "cuda", "cpu"] }, log);
        Assert.Equal("cpu", backbone.ExecutionProvider);
        bool gpuBuild = Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider");
        foreach (string provider in new[] { "tensorrt", "cuda" })
        {
            var line = Assert.Single(log.Lines, l => l.Contains($"{provider} skipped"));
            if (gpuBuild) Assert.Matches($@"skipped: lib[\w+.-]+\.so\.\d+ cannot be loaded, and libonnxruntime_providers_{provider}\.so needs it", line);
            else Assert.Contains("does not include it", line);
        }
    }

    [Fact]
    public void A_provider_whose_session_cannot_be_created_is_skipped_with_the_reason_and_the_next_is_used()
    {
        // A GPU provider can load and still fail when the session is made (a driver older than its CUDA,
        // no free device memory). No GPU here: the first two candidates fail as such a provider does; the
        // CPU session is real.
        var log = new ListLogger();
        var tried = new List<string>();
        var (session, provider) = OnnxBackbone.OpenSession(["tensorrt", "cuda", "cpu"], name =>
        {
            tried.Add(name);
            if (name != "cpu") throw new InvalidOperationException($"CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version ({name})");
            return new Microsoft.ML.OnnxRuntime.InferenceSession(ResNet.ModelPath);
        }, ResNet with { ExecutionProviders = ["tensorrt", "cuda", "cpu"] }, log);
        using (session)
        {
            Assert.Equal("cpu", provider);
            Assert.Equal(["tensorrt", "cuda", "cpu"], tried);
            Assert.All(ResNet.Taps, tap => Assert.Contains(tap, session.OutputMetadata.Keys)); // the real model, loaded
        }
        foreach (string p in new[] { "tensorrt", "cuda" })
            Assert.Single(log.Lines, l => l.StartsWith($"Execution provider {p} skipped: a session could not be created on it: CUDA failure 35") && l.EndsWith($"({p})"));

        // With nothing to fall back on, the error names model.providers and the last failure.
        var none = Assert.Throws<BackboneException>(() => OnnxBackbone.OpenSession(["cuda"], _ => throw new InvalidOperationException("out of memory"),
            ResNet with { ExecutionProviders = ["cuda"] }, log));
        Assert.Contains("model.providers: none of [cuda] is usable here (last failure: cuda: out of memory)", none.Message);

        // On the CPU a failure is the model's own, named as such.
        using var tmp = new TempFolder();
        string bad = Path.Combine(tmp.Path, "bad.onnx");
        File.WriteAllBytes(bad, [1, 2, 3, 4]);
        var model = Assert.Throws<BackboneException>(() => OnnxBackbone.OpenSession(["cpu"], _ => new Microsoft.ML.OnnxRuntime.InferenceSession(bad), ResNet with { ModelPath = bad }, log));
        Assert.Contains($"model.path: '{bad}' could not be loaded as an ONNX model", model.Message);
    }

    [Fact]
    public void The_libraries_a_provider_needs_are_read_from_its_file_as_readelf_lists_them()
    {
        // The plain twin: binutils' readelf over the native libraries this build ships (libonnxruntime.so
        // always; the GPU providers in the GPU build).
        string native = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        var files = Directory.GetFiles(native, "libonnxruntime*.so");
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            var psi = new System.Diagnostics.ProcessStartInfo("readelf", ["-d", file]) { RedirectStandardOutput = true };
            using var p = System.Diagnostics.Process.Start(psi)!;
            string text = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            var expected = System.Text.RegularExpressions.Regex.Matches(text, @"\(NEEDED\)\s+Shared library: \[([^\]]+)\]").Select(m => m.Groups[1].Value).ToList();
            Assert.NotEmpty(expected);
            Assert.Equal(expected, ProviderLibraries.Needed(file));
        }
        if (files.Any(f => f.EndsWith("_cuda.so")))
        {
            // What the README names: the 1.31 CUDA provider links the CUDA 13 runtime and cuBLAS.
            Assert.Contains("libcudart.so.13", ProviderLibraries.Needed(Path.Combine(native, "libonnxruntime_providers_cuda.so")));
            Assert.Contains("libnvinfer.so.10", ProviderLibraries.Needed(Path.Combine(native, "libonnxruntime_providers_tensorrt.so")));
        }
        Assert.Throws<InvalidDataException>(() => ProviderLibraries.Needed(Shared.Model("resnet50v2_features.onnx")));
    }

    [Fact]
    public void The_cuda_provider_is_told_the_device_and_whether_TF32_is_allowed()
    {
        // ONNX Runtime's names (CUDAExecutionProviderInfo): without "use_tf32" its CUDA provider rounds float
        // products to TF32 on Ampere and later, which the scoring graphs must not do. The options object itself
        // needs the CUDA libraries to load, so only what it is given can be checked here.
        Assert.Equal(new Dictionary<string, string> { ["device_id"] = "1", ["use_tf32"] = "0" }, OnnxBackbone.CudaOptions(1, tf32: false));
        Assert.Equal(new Dictionary<string, string> { ["device_id"] = "0", ["use_tf32"] = "1" }, OnnxBackbone.CudaOptions(0, tf32: true));
    }

    [Fact]
    public void No_usable_provider_is_a_clear_error()
    {
        var e = Assert.Throws<BackboneException>(() => new OnnxBackbone(ResNet with { ExecutionProviders = ["cuda"] }));
        Assert.Contains("none of [cuda] is usable", e.Message);
    }

    [Fact]
    public void Missing_model_names_the_file()
    {
        var e = Assert.Throws<BackboneException>(() => new OnnxBackbone(ResNet with { ModelPath = "/nowhere/model.onnx" }));
        Assert.Contains("/nowhere/model.onnx", e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void Unreadable_model_names_the_file()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "broken.onnx");
        File.WriteAllText(path, "not a model");
        var e = Assert.Throws<BackboneException>(() => new OnnxBackbone(ResNet with { ModelPath = path }));
        Assert.Contains(path, e.Message);
        Assert.Contains("could not be loaded", e.Message);
    }

    [Fact]
    public void Unknown_tap_lists_the_outputs_that_exist()
    {
        var e = Assert.Throws<BackboneException>(() => new OnnxBackbone(ResNet with { Taps = ["stage2", "layer4"] }));
        Assert.Contains("'layer4' is not an output", e.Message);
        Assert.Contains("stage1, stage2, stage3", e.Message);
    }

    [Fact]
    public void A_fixed_input_size_that_differs_from_the_configuration_is_named()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "fixed.onnx");
        File.WriteAllBytes(path, EdgeInspector.Testing.OnnxModelWriter.Identity("input", "feat", ["batch", 3, 224, 224]));
        var e = Assert.Throws<BackboneException>(() => new OnnxBackbone(new BackboneOptions { ModelPath = path, Taps = ["feat"], InputWidth = 256, InputHeight = 256, ExecutionProviders = ["cpu"] }));
        Assert.Contains("model.input_width/input_height", e.Message);
        Assert.Contains("fixed input of 224x224", e.Message);
        // The same model at its own size is accepted: the error is about the size, not the model.
        using var ok = new OnnxBackbone(new BackboneOptions { ModelPath = path, Taps = ["feat"], Degrees = [1], ExecutionProviders = ["cpu"] });
        Assert.Equal(224, ok.Layout.GridHeight);
    }

    [Fact]
    public void An_input_too_small_for_a_patch_grid_is_reported_before_any_frame()
    {
        var e = Assert.Throws<BackboneException>(() => new OnnxBackbone(ResNet with { InputWidth = 8, InputHeight = 8 }));
        Assert.Contains("model.input_width/input_height", e.Message);
        Assert.Contains("at least 2x2", e.Message);
    }

    [Fact]
    public void Mobilenet_can_be_dropped_in_through_configuration()
    {
        using var backbone = new OnnxBackbone(new BackboneOptions
        {
            ModelPath = Shared.Model("mobilenetv2_features.onnx"),
            Taps = ["block4", "block11"],
            Degrees = [3],
            ExecutionProviders = ["cpu"],
        });
        Assert.Equal(["block4/a3", "block11/a3"], backbone.Layout.Views.Select(v => v.ToString()));
        Assert.Equal(28, backbone.Layout.GridHeight);
    }

    [Fact]
    public void A_real_image_becomes_unit_features_and_similar_images_are_closer_than_different_ones()
    {
        using var backbone = new OnnxBackbone(ResNet);
        var o = backbone.Options;
        var pre = new ImagePreprocessor(o.InputWidth, o.InputHeight, rgb: true, o.Mean, o.Std);
        string bottle = Shared.Data("mvtec_ad/bottle/test/good");
        string[] files = [Path.Combine(bottle, "000.png"), Path.Combine(bottle, "001.png"), Path.Combine(Shared.Data("glass_industrial/glass/test/good"), Directory.GetFiles(Shared.Data("glass_industrial/glass/test/good"))[0])];
        var tensor = new float[files.Length * backbone.ImageSize];
        for (int i = 0; i < files.Length; i++)
        {
            using var img = ImagePreprocessor.Decode(files[i]);
            pre.Write(img, tensor.AsSpan(i * backbone.ImageSize, backbone.ImageSize));
        }
        var frames = files.Select(_ => new FrameFeatures(backbone.Layout)).ToArray();
        backbone.Extract(tensor, files.Length, frames);
        foreach (var f in frames)
        {
            Assert.Equal(1.0, f.Views[0].Take(512).Sum(x => (double)x * x), 3);
            Assert.Equal(1.0, f.Global.Sum(x => (double)x * x), 3);
        }
        double Cos(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum();
        Assert.True(Cos(frames[0].Global, frames[1].Global) > Cos(frames[0].Global, frames[2].Global));
    }

    [Fact]
    public void A_corrupt_image_names_the_file()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "frame.png");
        File.WriteAllBytes(path, [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var e = Assert.Throws<ImageDecodeException>(() => ImagePreprocessor.Decode(path));
        Assert.Contains(path, e.Message);
    }

    private sealed class ListLogger : ILogger
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) => Lines.Add(formatter(state, exception));
    }
}
