namespace EdgeInspector.Eval;

/// <summary>One test image of a category.</summary>
internal sealed record FrameItem(string Path, string Defect, string? MaskPath)
{
    public bool Anomalous => Defect != "good";

    public string Name => $"{Defect}/{System.IO.Path.GetFileName(Path)}";
}

/// <summary>An MVTec-layout category folder: test/good, test/&lt;defect&gt;, ground_truth/&lt;defect&gt;/&lt;name&gt;_mask.png.</summary>
internal sealed class Dataset
{
    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"];

    public required string Name { get; init; }
    public required IReadOnlyList<FrameItem> Frames { get; init; }
    public required bool HasMasks { get; init; }
    public required IReadOnlyList<string> KnownGood { get; init; }

    public static Dataset Load(string dir)
    {
        if (!Directory.Exists(dir)) throw new UsageException($"category directory '{dir}' does not exist.");
        string test = Path.Combine(dir, "test");
        if (!Directory.Exists(test)) throw new UsageException($"'{dir}' has no test/ folder; an MVTec-layout category (test/good, test/<defect>) is expected.");
        string gt = Path.Combine(dir, "ground_truth");
        bool hasMasks = Directory.Exists(gt);
        var frames = new List<FrameItem>();
        foreach (string defectDir in Directory.GetDirectories(test).Order(StringComparer.Ordinal))
        {
            string defect = Path.GetFileName(defectDir);
            foreach (string file in Directory.GetFiles(defectDir).Where(IsImage).Order(StringComparer.Ordinal))
            {
                string? mask = null;
                if (hasMasks && defect != "good")
                {
                    string candidate = Path.Combine(gt, defect, Path.GetFileNameWithoutExtension(file) + "_mask.png");
                    mask = File.Exists(candidate) ? candidate : null;
                }
                frames.Add(new FrameItem(file, defect, mask));
            }
        }
        if (frames.Count == 0) throw new UsageException($"'{test}' holds no images.");
        if (!frames.Any(f => !f.Anomalous) || !frames.Any(f => f.Anomalous)) Console.Error.WriteLine($"warning: '{test}' has only one class; AUROC is undefined.");
        string train = Path.Combine(dir, "train", "good");
        var good = Directory.Exists(train) ? Directory.GetFiles(train).Where(IsImage).Order(StringComparer.Ordinal).ToList() : [];
        return new Dataset { Name = Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/')), Frames = frames, HasMasks = hasMasks, KnownGood = good };
    }

    private static bool IsImage(string path) => ImageExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>The line order: a seeded Fisher-Yates shuffle of the test images, then the first <paramref name="limit"/>.</summary>
    public static List<FrameItem> LineOrder(IReadOnlyList<FrameItem> frames, int seed, int limit)
    {
        var list = frames.ToList();
        var rng = new Random(seed);
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
        return limit > 0 && limit < list.Count ? list.GetRange(0, limit) : list;
    }
}

/// <summary>Finds a model by name where a checkout keeps them.</summary>
internal static class ModelLocator
{
    public static string Find(string name)
    {
        if (File.Exists(name)) return name;
        var roots = new List<string>();
        string? env = Environment.GetEnvironmentVariable("EDGEINSPECTOR_MODELS");
        if (!string.IsNullOrEmpty(env)) roots.Add(env);
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                roots.Add(Path.Combine(d.FullName, "models"));
                roots.Add(Path.Combine(d.FullName, "shared", "models"));
            }
        }
        foreach (string root in roots)
        {
            string p = Path.Combine(root, name);
            if (File.Exists(p)) return p;
        }
        throw new UsageException($"model '{name}' not found in ./models, ../shared/models or $EDGEINSPECTOR_MODELS; pass --model PATH.");
    }
}
