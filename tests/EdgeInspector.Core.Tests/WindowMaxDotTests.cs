using System.Numerics.Tensors;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Tests;

public sealed class WindowMaxDotTests
{
    private static float[] Search(float[] query, float[] reference, int h, int w, int d, int r, float[]? start = null, string? path = null)
    {
        var grid = WindowGrid.Pack(reference, h, w, d, r);
        var q = new WindowQuery();
        q.Pack(query, h, w, d);
        var best = start ?? Enumerable.Repeat(float.NegativeInfinity, h * w).ToArray();
        if (path is null) WindowMaxDot.Accumulate(q, grid, best);
        else WindowMaxDot.Run(path, q, grid, best);
        return best;
    }

    /// <summary>The float dot products, one at a time (0 outside the grid): what the byte search approximates.</summary>
    private static float[] Exact(float[] query, float[] reference, int h, int w, int d, int r)
    {
        var best = Enumerable.Repeat(float.NegativeInfinity, h * w).ToArray();
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                for (int dy = -r; dy <= r; dy++)
                {
                    for (int dx = -r; dx <= r; dx++)
                    {
                        int yy = y + dy, xx = x + dx;
                        float dot = 0;
                        if (yy >= 0 && yy < h && xx >= 0 && xx < w)
                        {
                            for (int k = 0; k < d; k++) dot += query[(y * w + x) * d + k] * reference[(yy * w + xx) * d + k];
                        }
                        best[y * w + x] = Math.Max(best[y * w + x], dot);
                    }
                }
            }
        }
        return best;
    }

    internal static float[] UnitRows(Random rng, int n, int d)
    {
        var rows = new float[n * d];
        for (int p = 0; p < n; p++)
        {
            var row = rows.AsSpan(p * d, d);
            for (int k = 0; k < d; k++) row[k] = (float)rng.NextDouble() - 0.5f;
            float norm = MathF.Sqrt(TensorPrimitives.Dot(row, row));
            for (int k = 0; k < d; k++) row[k] /= norm;
        }
        return rows;
    }

    [Fact]
    public void Window_maxima_by_hand()
    {
        // A 1×3 grid of 2-D unit vectors. Queries (1,0), (0,1), (1,0); references (0,1), (0.6,0.8), (−1,0).
        // Both largest magnitudes are 1, so a step is 1/63: the queries are levels (63,0), (0,63), (63,0), the
        // references (0,63), (38,50) (0.6 · 63 = 37.8 and 0.8 · 63 = 50.4, rounded) and (−63,0), and a dot
        // is a sum of level products / 63². (A grid's step is 1/63 rounded up to 18 significant bits, a few parts
        // in a million: WindowGrid.StepOf.)
        float[] query = [1, 0, 0, 1, 1, 0];
        float[] reference = [0, 1, 0.6f, 0.8f, -1, 0];
        // r = 1. q0 sees outside (0), r0 (0), r1 (63·38/63² = 38/63); q1 sees r0 (1), r1 (50/63), r2 (0);
        // q2 sees r1 (38/63), r2 (−1), outside (0).
        Assert.Equal([38f / 63, 1f, 38f / 63], Search(query, reference, 1, 3, 2, 1), new Tolerance(1e-5f));
        // r = 0: each query against its own position only, a negative dot included: 0, 50/63, −1.
        Assert.Equal([0f, 50f / 63, -1f], Search(query, reference, 1, 3, 2, 0), new Tolerance(1e-5f));
        // Maxima accumulate into what is there.
        Assert.Equal([0.5f, 50f / 63, 2f], Search(query, reference, 1, 3, 2, 0, [0.5f, float.NegativeInfinity, 2f]), new Tolerance(1e-5f));
        // An offset that leaves the grid counts as 0 (a 1×1 grid, r = 1): the lone dot −1 loses to it.
        Assert.Equal([0f], Search([1, 0], [-1, 0], 1, 1, 2, 1));
    }

    private sealed class Tolerance(float eps) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => MathF.Abs(a - b) <= eps;

        public int GetHashCode(float v) => 0;
    }

    /// <summary>Every kernel the machine can run, the shapes the dispatch and the loops treat apart.</summary>
    public static TheoryData<string, int, int, int, int> PathCases()
    {
        var cases = new TheoryData<string, int, int, int, int>();
        foreach (string path in WindowMaxDot.Paths())
        {
            // The default (28×28 patches, 128 dims, a 5×5 window); fewer rows than a pair or a window; widths
            // under, at and over a vector's lanes; dims that are no multiple of four; radii 0 to 4.
            foreach (var (h, w, d, r) in new[] { (28, 28, 128, 2), (1, 9, 7, 2), (2, 5, 3, 2), (4, 17, 33, 2), (6, 40, 12, 2), (5, 7, 19, 1), (3, 20, 5, 3), (5, 16, 8, 0), (7, 33, 16, 4) })
                cases.Add(path, h, w, d, r);
        }
        return cases;
    }

    [Theory]
    [MemberData(nameof(PathCases))]
    public void Each_kernel_matches_the_plain_twin_to_the_bit(string path, int h, int w, int d, int r)
    {
        var rng = new Random(h * 1000 + w * 10 + r + path.Length);
        // Unnormalised rows, some of them large: the levels then span the whole range and every sign.
        var query = new float[h * w * d];
        var reference = new float[h * w * d];
        for (int i = 0; i < query.Length; i++)
        {
            query[i] = (float)rng.NextDouble() - 0.5f;
            reference[i] = ((float)rng.NextDouble() - 0.5f) * (i % 7 == 0 ? 3f : 1f);
        }
        var start = Enumerable.Range(0, h * w).Select(i => i % 5 == 0 ? 0.01f * i : float.NegativeInfinity).ToArray();
        var fast = Search(query, reference, h, w, d, r, (float[])start.Clone(), path);
        var plain = Search(query, reference, h, w, d, r, (float[])start.Clone(), "scalar");
        Assert.Equal(plain, fast);
    }

    [Theory]
    [InlineData(28, 28, 128, 2)]
    [InlineData(5, 7, 19, 1)]
    [InlineData(4, 17, 1024, 2)]
    public void The_byte_search_is_within_half_a_step_per_term_of_the_float_dots(int h, int w, int d, int r)
    {
        var rng = new Random(d + r);
        var query = UnitRows(rng, h * w, d);
        var reference = UnitRows(rng, h * w, d);
        var exact = Exact(query, reference, h, w, d, r);
        var bytes = Search(query, reference, h, w, d, r);
        // A level is off by at most half a step: |x·y − x̂·ŷ| ≤ (s_y ‖x‖₁ + s_x ‖ŷ‖₁) / 2, and ‖·‖₁ ≤ √d for unit rows.
        float sx = WindowGrid.StepOf(query), sy = WindowGrid.StepOf(reference);
        float bound = (sx + sy) / 2 * MathF.Sqrt(d) * 1.05f;
        float worst = 0;
        for (int i = 0; i < exact.Length; i++) worst = Math.Max(worst, MathF.Abs(exact[i] - bytes[i]));
        Assert.True(worst <= bound, $"worst {worst} over the bound {bound}");
        // And the errors are a step's, not the bound's: on random rows they average out.
        Assert.True(worst <= 2 * (sx + sy), $"worst {worst} against steps {sx}, {sy}");
    }

    [Fact]
    public void A_grid_gives_its_levels_back_and_packs_them_again_to_the_same_bytes()
    {
        var rows = Enumerable.Range(0, 4 * 6 * 3).Select(i => (i - 30) / 40f).ToArray();
        var grid = WindowGrid.Pack(rows, 4, 6, 3, 2);
        Assert.Equal(41f / 40 / 63, grid.Step, 1e-7f); // the largest magnitude, 41/40, over 63 levels
        var back = new float[rows.Length];
        grid.CopyRows(back);
        for (int i = 0; i < rows.Length; i++) Assert.Equal(rows[i], back[i], grid.Step / 2 + 1e-7f);
        // A snapshot holds these values; packed again they give the same bytes, so a restart scores the same.
        Assert.Equal(grid.Data, WindowGrid.Pack(back, 4, 6, 3, 2).Data);
        Assert.Equal(grid.Data.Length, WindowGrid.BytesFor(4, 6, 3, 2));
        // A quarter of the floats, with the zero columns, the padding to four features and the slack.
        Assert.Equal(4 * 1 * (6 + 4) * 4 + WindowGrid.Slack, grid.Data.Length);
    }

    [Theory]
    [InlineData(3, 7, 37)]
    [InlineData(2, 5, 128)]
    [InlineData(1, 3, 5)]
    public void Packing_gives_every_value_the_level_of_the_plain_rule(int h, int w, int d)
    {
        // Values k/128 for |k| ≤ 126, the largest 126/128 = 63 · 2⁻⁶: a step of exactly 2⁻⁶, so odd k fall on a
        // tie (k/2 levels) and round to even, as MathF.Round does; and random values between them.
        var rng = new Random(d);
        var values = new float[h * w * d];
        for (int i = 0; i < values.Length; i++) values[i] = i % 3 == 0 ? rng.Next(-126, 127) / 128f : (float)(rng.NextDouble() * 1.9 - 0.95);
        values[0] = 126 / 128f;
        var grid = WindowGrid.Pack(values, h, w, d, 1);
        var query = new WindowQuery();
        query.Pack(values, h, w, d);
        var kept = KeptRows.Pack(values, h * w, d);
        var snapshot = new sbyte[values.Length + 3];
        Assert.Equal(1f / 64, grid.Step);
        Assert.Equal(1f / 64, query.Step);
        Assert.Equal(1f / 64, kept.Step);
        Assert.Equal(1f / 64, WindowGrid.ToLevels(values, snapshot));
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int sum = 0;
                for (int k = 0; k < d; k++)
                {
                    int level = WindowGrid.Level(values[(y * w + x) * d + k], 64f);
                    sum += level;
                    Assert.Equal(WindowGrid.Zero + level, grid.Data[grid.IndexOf(y, x + 1, k)]);
                    Assert.Equal(level, query.Data[query.IndexOf(y, x, k)]);
                    Assert.Equal(level, query.RawFlat[query.FlatIndexOf(y * w + x, k)]);
                    Assert.Equal(WindowGrid.Zero + level, kept.Data[(y * w + x) * kept.RowBytes + k]);
                    Assert.Equal(level, snapshot[(y * w + x) * d + k]);
                }
                Assert.Equal(64 * sum, query.ZeroDot[y * query.Stride + x]);
                Assert.Equal(64 * sum, query.FlatZeroDot[y * w + x]);
            }
        }
        // A tie by hand: 3/128 is 1.5 levels, rounded to 2; 5/128 is 2.5, rounded to 2.
        Assert.Equal(2, WindowGrid.Level(3 / 128f, 64f));
        Assert.Equal(2, WindowGrid.Level(5 / 128f, 64f));
    }

    [Fact]
    public void Mismatched_shapes_and_lengths_are_rejected_with_a_message()
    {
        var grid = WindowGrid.Pack(new float[2 * 3 * 4], 2, 3, 4, 1);
        var q = new WindowQuery();
        q.Pack(new float[2 * 4 * 4], 2, 4, 4);
        var e = Assert.Throws<ArgumentException>(() => WindowMaxDot.Accumulate(q, grid, new float[8]));
        Assert.Contains("2×4 grid of 4", e.Message);
        Assert.Contains("2×3 grid of 4", e.Message);
        q.Pack(new float[2 * 3 * 4], 2, 3, 4);
        Assert.Throws<ArgumentException>(() => WindowMaxDot.Accumulate(q, grid, new float[5]));
        Assert.Throws<ArgumentException>(() => WindowGrid.Pack(new float[10], 2, 3, 4, 1));
        Assert.Throws<ArgumentException>(() => q.Pack(new float[10], 2, 3, 4));
    }
    [Fact]
    public void A_grids_levels_are_its_values_over_its_step_by_hand()
    {
        // 2×3 patches of 5 features, radius 1: 0.63 at patch (0, 0) feature 0 and −0.63 at patch (1, 2) feature 4
        // are the grid's largest magnitudes, so they are levels 63 and −63; 0.3 · 63 / 0.63 = 30 exactly; zeros stay 0.
        int h = 2, w = 3, d = 5;
        var values = new float[h * w * d];
        values[0] = 0.63f;
        values[(1 * w + 2) * d + 4] = -0.63f;
        values[(0 * w + 1) * d + 2] = 0.3f;
        var grid = WindowGrid.Pack(values, h, w, d, 1);
        var levels = new sbyte[h * w * d];
        grid.CopyLevels(levels);
        var expected = new sbyte[h * w * d];
        expected[0] = 63;
        expected[(1 * w + 2) * d + 4] = -63;
        expected[(0 * w + 1) * d + 2] = 30;
        Assert.Equal(expected, levels);
        Assert.Throws<ArgumentException>(() => grid.CopyLevels(new sbyte[h * w * d - 1]));

        // The kept rows of patches (1, 2) and (0, 1), at the grid's levels.
        var kept = KeptRows.Gather(grid, [5, 1]);
        var rows = new sbyte[2 * d];
        kept.CopyLevels(rows);
        Assert.Equal(new sbyte[] { 0, 0, 0, 0, -63, 0, 0, 30, 0, 0 }, rows);
    }
}
