namespace EdgeInspector.Eval;

/// <summary>One test image of a category.</summary>
internal sealed record FrameItem(string Path, string Defect, string? MaskPath)
{
    public bool Anomalous => Defect != "good";

    /// <summary>A defective image whose category has masks but which has none: its pixels cannot be counted either way.</summary>
    public bool LacksMask(bool categoryHasMasks) => categoryHasMasks && Anomalous && MaskPath is null;

    public string Name => $"{Defect}/{System.IO.Path.GetFileName(Path)}";
}

/// <summary>
/// An MVTec-layout category folder: test/good, test/&lt;defect&gt;, ground_truth/&lt;defect&gt;/&lt;name&gt;_mask.png.
/// A mask named as its image (&lt;name&gt;.png, as some re-packagings of VisA and BTAD have it) or in another
/// image format is taken too. A defective image without any mask is left out of the pixel metrics, with a
/// warning: counted as all-normal pixels, its defect would read as a false positive.
/// </summary>
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
            var masks = hasMasks && defect != "good" ? MasksIn(Path.Combine(gt, defect)) : null;
            foreach (string file in Directory.GetFiles(defectDir).Where(IsImage).Order(StringComparer.Ordinal))
            {
                string? mask = null;
                if (masks is not null)
                {
                    string stem = Path.GetFileNameWithoutExtension(file);
                    mask = masks.GetValueOrDefault(stem + "_mask") ?? masks.GetValueOrDefault(stem);
                }
                frames.Add(new FrameItem(file, defect, mask));
            }
        }
        if (frames.Count == 0) throw new UsageException($"'{test}' holds no images.");
        var unmasked = frames.Where(f => f.LacksMask(hasMasks)).ToList();
        if (unmasked.Count > 0)
        {
            var first = unmasked[0];
            Console.Error.WriteLine($"warning: {unmasked.Count} defective image(s) in '{test}' have no mask (e.g. {first.Name}: none at " +
                $"'{Path.Combine(gt, first.Defect, Path.GetFileNameWithoutExtension(first.Path) + "_mask.png")}'); they are left out of the pixel metrics.");
        }
        if (!frames.Any(f => !f.Anomalous) || !frames.Any(f => f.Anomalous)) Console.Error.WriteLine($"warning: '{test}' has only one class; AUROC is undefined.");
        string train = Path.Combine(dir, "train", "good");
        var good = Directory.Exists(train) ? Directory.GetFiles(train).Where(IsImage).Order(StringComparer.Ordinal).ToList() : [];
        return new Dataset { Name = Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/')), Frames = frames, HasMasks = hasMasks, KnownGood = good };
    }

    private static bool IsImage(string path) => ImageExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>The masks of one defect type by file name without extension (the first in name order where two formats share one).</summary>
    private static Dictionary<string, string> MasksIn(string dir)
    {
        var masks = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!Directory.Exists(dir)) return masks;
        foreach (string file in Directory.GetFiles(dir).Where(IsImage).Order(StringComparer.Ordinal)) masks.TryAdd(Path.GetFileNameWithoutExtension(file), file);
        return masks;
    }

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
