using EdgeInspector.Configuration;
using EdgeInspector.Inference.Onnx;

namespace EdgeInspector.Service;

/// <summary>
/// The checks that need more than the YAML: the folders the service writes to, and the model. The service
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

    /// <summary>Loads and probes the model as the service does; a one-line summary, or a <see cref="BackboneException"/> naming the field.</summary>
    public static string Model(ModelSettings m)
    {
        using var model = new OnnxBackbone(SharedBackbone.OptionsFrom(m));
        return $"{Path.GetFileName(m.Path)} on {model.ExecutionProvider}, taps [{string.Join(", ", m.Taps)}], grid {model.Layout.GridHeight}×{model.Layout.GridWidth}";
    }
}
