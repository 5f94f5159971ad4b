using System.Diagnostics;
using EdgeInspector.Eval;

namespace EdgeInspector.Integration.Tests;

/// <summary>scripts/share-lot.sh: a lot with a chosen defect share, as the eval reads it.</summary>
public sealed class LotScriptTests
{
    private static string Script()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "scripts", "share-lot.sh");
            if (File.Exists(candidate)) return candidate;
        }
        throw new InvalidOperationException($"No scripts/share-lot.sh above {AppContext.BaseDirectory}.");
    }

    private static (int Exit, string Output) ShareLot(string category, string outDir, string share)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Script(), category, outDir, share }) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    [Fact]
    public void A_lot_holds_every_defective_image_and_good_ones_spread_evenly_to_the_share()
    {
        // Glass: 18 good, 80 defective. A share of 0.9 wants 80 · 0.1 / 0.9 = 8.9, so 9 good: every second one.
        string glass = Shared.Data("glass_industrial/glass");
        using var tmp = new TempFolder();
        string lot = Path.Combine(tmp.Path, "glass_90");
        var (exit, output) = ShareLot(glass, lot, "0.9");
        Assert.True(exit == 0, output);
        Assert.Contains("80 defective, 9 good (share 0.899)", output);

        var data = Dataset.Load(lot);
        var source = Dataset.Load(glass);
        Assert.Equal(80, data.Frames.Count(f => f.Anomalous));
        var goods = source.Frames.Where(f => !f.Anomalous).Select(f => Path.GetFileName(f.Path)).ToList();
        var chosen = data.Frames.Where(f => !f.Anomalous).Select(f => Path.GetFileName(f.Path)).ToList();
        Assert.Equal(Enumerable.Range(0, 9).Select(i => goods[2 * i]), chosen);
        // The masks come along: every defective frame with a mask in the source has it in the lot.
        Assert.Equal(source.Frames.Count(f => f.MaskPath is not null), data.Frames.Count(f => f.MaskPath is not null));
        Assert.True(data.HasMasks);
    }

    [Theory]
    [InlineData("1", "is not a number above 0 and below 1")]
    [InlineData("abc", "is not a number above 0 and below 1")]
    [InlineData("0.2", "has 18 good images; a share of 0.2 with its 80 defective needs 320")]
    public void A_share_it_cannot_make_is_refused_saying_why(string share, string expected)
    {
        using var tmp = new TempFolder();
        string lot = Path.Combine(tmp.Path, "lot");
        var (exit, output) = ShareLot(Shared.Data("glass_industrial/glass"), lot, share);
        Assert.Equal(2, exit);
        Assert.Contains(expected, output);
    }
}
