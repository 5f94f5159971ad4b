using EdgeInspector.Core.Tiling;

namespace EdgeInspector.Eval;

/// <summary>Per-stage time spent, summed over frames.</summary>
internal sealed class StageTimes
{
    public TimeSpan Preprocess, Backbone, Features, Scoring, Total;

    /// <summary>Streaming only: scoring time of frames scored on arrival, after the warm-up batch.</summary>
    public TimeSpan SteadyScoring;

    public int SteadyFrames;
}

/// <summary>What one mode produced for every frame of the line order.</summary>
internal sealed class ModeRun
{
    public required string Mode { get; init; }
    /// <summary>The backbone's execution provider, and the path the scoring ran ("managed" or "onnx").</summary>
    public required string Provider { get; init; }
    public string Scoring { get; set; } = "managed";
    /// <summary>The path the views were built by ("managed" or "onnx").</summary>
    public string Views { get; set; } = "managed";
    public required float[]?[] Grids { get; init; }
    public required float[] Image { get; init; }
    public float[]? Calibrated { get; init; }
    public StageTimes Times { get; } = new();
    public int Frames;
    public int Errors;
    public double PeakRssMb;
    /// <summary>Tiled runs: each frame's tile grids (TileGridHeight × TileGridWidth) and its tiles' geometry; <see cref="Grids"/> then holds the stitched patch grid.</summary>
    public float[][]?[]? Tiles { get; init; }
    public TileGrid?[]? Geometry { get; init; }
    public int TileGridHeight { get; init; }
    public int TileGridWidth { get; init; }
    public int ReservoirFrames;
    public long Quarantined;
}
