using EdgeInspector.Core.Features;

namespace EdgeInspector.Core.Tests;

/// <summary>
/// Synthetic line frames: every patch is one of a few "normal" directions plus noise; a defect frame
/// has a 2x2 block of patches pointing in a direction no normal frame has.
/// </summary>
internal sealed class SyntheticLine
{
    public readonly FeatureLayout Layout = new(6, 6, [new ViewSpec("t", 1, 16), new ViewSpec("t", 3, 16)], 16);
    private readonly Random _rng = new(11);
    private readonly float[][] _normals;
    private readonly float[] _defect;

    public SyntheticLine()
    {
        _normals = Enumerable.Range(0, 4).Select(_ => Unit(Enumerable.Range(0, 16).Select(_ => (float)_rng.NextDouble() - 0.5f).ToArray())).ToArray();
        _defect = Unit(Enumerable.Range(0, 16).Select(_ => (float)_rng.NextDouble() - 0.5f).ToArray());
    }

    public FrameFeatures Frame(bool defect)
    {
        var f = new FrameFeatures(Layout);
        for (int v = 0; v < 2; v++)
        {
            for (int q = 0; q < 36; q++)
            {
                bool bad = defect && q % 6 < 2 && q / 6 < 2;
                var basis = bad ? _defect : _normals[(q / 6 + q % 6) % 4];
                var x = basis.Select(b => b + 0.05f * ((float)_rng.NextDouble() - 0.5f)).ToArray();
                Unit(x).CopyTo(f.Views[v], q * 16);
            }
        }
        f.Global[0] = 1;
        return f;
    }

    private static float[] Unit(float[] x)
    {
        float n = MathF.Sqrt(x.Sum(v => v * v));
        return x.Select(v => v / n).ToArray();
    }
}
