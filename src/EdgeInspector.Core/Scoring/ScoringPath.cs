namespace EdgeInspector.Core.Scoring;

/// <summary>
/// <c>engine.scoring</c> (eval: <c>--scoring</c>): where the work after the backbone runs, and the one place its
/// values, its default and what each means are defined (docs/decisions/0011).
/// </summary>
public static class ScoringPath
{
    /// <summary>The faster path as measured, per provider.</summary>
    public const string Auto = "auto";

    /// <summary>Managed code: the plain twin.</summary>
    public const string Managed = "managed";

    /// <summary>ONNX Runtime graphs on the backbone's provider.</summary>
    public const string Onnx = "onnx";

    /// <summary>The default setting.</summary>
    public const string Default = Auto;

    /// <summary>Every setting.</summary>
    public static readonly string[] Settings = [Auto, Managed, Onnx];

    /// <summary>
    /// The path the reservoir's scoring runs under <paramref name="setting"/> with the backbone on
    /// <paramref name="provider"/>: <c>auto</c> is the graphs on a GPU provider and the managed kernel on the
    /// CPU, where it is the faster.
    /// </summary>
    public static string Scoring(string setting, string provider) => setting switch
    {
        Auto => provider == "cpu" ? Managed : Onnx,
        Managed or Onnx => setting,
        _ => throw Unknown(setting),
    };

    /// <summary>
    /// True when the views are built by the views graph under <paramref name="setting"/>: for <c>onnx</c>, and
    /// for <c>auto</c> on every provider, since the graph is the faster on the CPU too.
    /// </summary>
    public static bool ViewsOnGraph(string setting) => setting switch
    {
        Auto or Onnx => true,
        Managed => false,
        _ => throw Unknown(setting),
    };

    private static ArgumentException Unknown(string setting) =>
        new($"'{setting}' is not one of {string.Join(", ", Settings)}.", nameof(setting));
}
