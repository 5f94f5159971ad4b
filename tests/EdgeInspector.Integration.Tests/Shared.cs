namespace EdgeInspector.Integration.Tests;

/// <summary>
/// Locates ../shared (models and data) beside the checkout. A missing folder fails the test with a
/// message saying what is missing: these tests never skip.
/// </summary>
internal static class Shared
{
    public static string Root { get; } = Find();

    public static string Model(string name) => Require(Path.Combine(Root, "models", name));

    public static string Data(string category) => Require(Path.Combine(Root, "data", category));

    private static string Require(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new InvalidOperationException($"{path} is missing; the integration tests need ../shared beside the checkout.");
        return path;
    }

    private static string Find()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "shared");
            if (Directory.Exists(Path.Combine(candidate, "models")) && Directory.Exists(Path.Combine(candidate, "data"))) return candidate;
        }
        throw new InvalidOperationException($"No shared/ folder with models/ and data/ above {AppContext.BaseDirectory}; the integration tests need ../shared beside the checkout.");
    }
}

/// <summary>A per-test temporary folder, deleted on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ei-test-" + Guid.NewGuid().ToString("N")[..8]);

    public TempFolder() => Directory.CreateDirectory(Path);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
