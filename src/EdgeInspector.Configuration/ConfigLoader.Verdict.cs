using System.Globalization;

namespace EdgeInspector.Configuration;

// The verdict policy's checks across fields.
public static partial class ConfigLoader
{
    private const string CalibratedScore = "a calibrated score: about 0 for a typical good part, which must pass";

    /// <summary>
    /// A typical good part's calibrated score is about 0 (a robust z against the accepted parts), and it must
    /// pass: a threshold less its unsure band at or under 0 would reject most good parts, as a slipped decimal
    /// point does (<c>unsure_band: 5</c>). Refused, so that a hot reload keeps the last good policy.
    /// </summary>
    private static void TypicalPartPasses(YamlSection vd, VerdictSettings v, IReadOnlyList<(string Name, YamlSection Section)> sections, List<RecipeSettings> recipes)
    {
        static string N(double x) => x.ToString("0.###", CultureInfo.InvariantCulture); // 0.4 − 0.5 is −0.09999999999999998
        string Unsure(double t) => $"parts scored from {N(t - v.UnsureBand)} to {N(t + v.UnsureBand)} unsure, a typical good part (calibrated about 0) among them";
        if (v.Threshold <= 0) vd.FieldError("threshold", "0 would fail a typical good part (calibrated about 0); expected above 0 (3 by default)");
        else if (v.Threshold - v.UnsureBand <= 0)
            vd.FieldError("unsure_band", $"{N(v.UnsureBand)} around verdict.threshold {N(v.Threshold)} makes {Unsure(v.Threshold)}; the band must be narrower than the threshold");
        for (int i = 0; i < recipes.Count; i++)
        {
            if (recipes[i].Threshold is not { } t) continue;
            if (t <= 0) sections[i].Section.FieldError("threshold", "0 would fail a typical good part (calibrated about 0); expected above 0");
            else if (t - v.UnsureBand <= 0) sections[i].Section.FieldError("threshold", $"{N(t)} with verdict.unsure_band {N(v.UnsureBand)} makes {Unsure(t)}; the threshold must be above the band");
        }
    }
}
