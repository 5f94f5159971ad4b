namespace EdgeInspector.Inference.Onnx;

/// <summary>How a backbone ONNX file is fed and read. Everything a site needs to drop in another model.</summary>
public sealed record BackboneOptions
{
    /// <summary>Path of the .onnx file.</summary>
    public string ModelPath { get; init; } = "";

    /// <summary>Input width in pixels.</summary>
    public int InputWidth { get; init; } = 224;

    /// <summary>Input height in pixels.</summary>
    public int InputHeight { get; init; } = 224;

    /// <summary>Channel order the model expects: "rgb" or "bgr".</summary>
    public string ChannelOrder { get; init; } = "rgb";

    /// <summary>Per-channel mean, in the model's channel order, on a 0..1 scale.</summary>
    public float[] Mean { get; init; } = [0.485f, 0.456f, 0.406f];

    /// <summary>Per-channel standard deviation, in the model's channel order, on a 0..1 scale.</summary>
    public float[] Std { get; init; } = [0.229f, 0.224f, 0.225f];

    /// <summary>Named outputs used as feature taps, each [B, C, H, W].</summary>
    public string[] Taps { get; init; } = ["stage2", "stage3"];

    /// <summary>The tap whose global average is the image-level feature; default the last (deepest) tap.</summary>
    public string? GlobalTap { get; init; }

    /// <summary>Local aggregation degrees; one view per tap and degree.</summary>
    public int[] Degrees { get; init; } = [1, 3, 5];

    /// <summary>Execution providers in order of preference: "tensorrt", "cuda", "cpu".</summary>
    public string[] ExecutionProviders { get; init; } = ["tensorrt", "cuda", "cpu"];

    /// <summary>TensorRT: build FP16 engines.</summary>
    public bool TensorRtFp16 { get; init; } = true;

    /// <summary>TensorRT: directory for cached engines (building one takes minutes).</summary>
    public string TensorRtCacheDir { get; init; } = "trt-cache";

    /// <summary>CUDA / TensorRT device.</summary>
    public int DeviceId { get; init; }

    /// <summary>Threads inside one operator (0 = ONNX Runtime's default, one per core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads across operators (0 = default).</summary>
    public int InterOpThreads { get; init; }
}
