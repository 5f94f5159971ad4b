using EdgeInspector.Configuration;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Inference.Onnx;

namespace EdgeInspector.Service;

/// <summary>
/// The checks that need more than the YAML: the folders the service writes to, the model, and the engine's
/// memory with that model. The service
/// runs them before it starts, and <c>edgeinspector validate</c> runs the same ones, so that a check
/// before saving an edit catches what the service would refuse.
/// </summary>
internal static class Preflight
{
    /// <summary>Each folder the service must write to and cannot, as "field: folder: why".</summary>
    public static List<string> Folders(InspectorSettings s)
    {
        var problems = new List<string>();
        Writable("logging.dir", s.Logging.Dir, problems);
        Writable("mqtt.spool_dir", s.Mqtt.SpoolDir, problems);
        if (s.Archive.Save != "none") Writable("archive.dir", s.Archive.Dir, problems);
        return problems;
    }

    /// <summary>
    /// What the service takes but a technician would want to know before saving: a replay folder with no
    /// images yet, which the camera waits for, retrying, as for a camera that is not there yet.
    /// </summary>
    public static List<string> Notes(InspectorSettings s)
    {
        var notes = new List<string>();
        for (int i = 0; i < s.Cameras.Length; i++)
        {
            var c = s.Cameras[i];
            if (c.Source != "replay" || !Directory.Exists(c.Replay.Folder)) continue;
            if (EdgeInspector.Cameras.FolderReplaySource.ListImages(c.Replay.Folder).Length == 0)
            {
                notes.Add($"cameras[{i}].replay.folder: no images in {c.Replay.Folder} ({string.Join(", ", EdgeInspector.Cameras.FolderReplaySource.ImageExtensions)}, searched recursively); camera {c.Name} will wait for them, retrying");
            }
        }
        return notes;
    }

    private static void Writable(string field, string dir, List<string> problems)
    {
        string probe = Path.Combine(dir, $".write-test-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problems.Add($"{field}: cannot write to {dir}: {e.Message}");
        }
    }

    /// <summary>
    /// Loads and probes the model as the service does: a one-line summary and the layout of its features,
    /// or a <see cref="BackboneException"/> naming the field.
    /// </summary>
    public static string Model(ModelSettings m, out FeatureLayout layout)
    {
        using var model = new OnnxBackbone(SharedBackbone.OptionsFrom(m));
        layout = model.Layout;
        return $"{Path.GetFileName(m.Path)} on {model.ExecutionProvider}, taps [{string.Join(", ", m.Taps)}], grid {model.Layout.GridHeight}×{model.Layout.GridWidth}";
    }

    /// <summary>
    /// The engine's memory bound with this model: what one camera's engine can hold of what it learns (a
    /// full warm-up batch and a full reservoir, over every tile position) against <c>engine.memory_mb</c>.
    /// Null when it fits; otherwise the problem, with what it needs and what to change.
    /// </summary>
    public static string? EngineMemory(InspectorSettings s, FeatureLayout backbone)
    {
        var o = s.Engine.Options;
        var t = s.Engine.Tiles;
        long bound = EngineBound(s, backbone);
        if (bound <= s.Engine.MemoryBytes) return null;
        string tiles = t.Count == 1 ? "one tile" : $"{t.Cols}x{t.Rows} tiles ({t.Count} tile positions{(t.Pooled ? ", pooled" : "")})";
        return $"each camera's engine would hold up to {Mb(bound)} MB with this model and {tiles}: a warm-up batch of {o.Batch} frames and a reservoir of {o.ReservoirFrames} frames (keeping {o.ReservoirKeep:0.###} of each{(o.ReservoirWindow >= 0 ? ", and each whole for the window search" : "")}), per tile, " +
            $"more than engine.memory_mb {s.Engine.MemoryMb}; use fewer tiles, a smaller engine.batch or engine.reservoir_frames{(o.ReservoirWindow >= 0 ? ", engine.reservoir_window: -1" : "")}, or raise engine.memory_mb if the machine has the memory";
    }

    /// <summary>What one camera's engine can hold of what it learns with this model (<see cref="TiledEngine.MemoryBound"/>), in bytes.</summary>
    public static long EngineBound(InspectorSettings s, FeatureLayout backbone) =>
        TiledEngine.MemoryBound(FrameInspector.EngineLayout(backbone, s.Engine.Options), s.Engine.Options, s.Engine.Tiles.Count, s.Engine.Tiles.Pooled);

    /// <summary>How many frames may wait out a warm-up within <c>engine.memory_mb</c> (<see cref="TiledEngine.FramesBeside(long)"/>).</summary>
    public static int WarmupBacklog(InspectorSettings s, FeatureLayout backbone) =>
        TiledEngine.FramesBeside(FrameInspector.EngineLayout(backbone, s.Engine.Options), s.Engine.Options, s.Engine.Tiles.Count, s.Engine.Tiles.Pooled, s.Engine.MemoryBytes);

    /// <summary>Bytes as whole megabytes, rounded up.</summary>
    public static long Mb(long bytes) => (bytes + (1L << 20) - 1) >> 20;
}
