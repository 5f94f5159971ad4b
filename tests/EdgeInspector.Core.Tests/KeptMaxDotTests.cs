using System.Numerics.Tensors;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Tests;

public sealed class KeptMaxDotTests
{
    private static float[] Search(float[] query, KeptRows kept, int h, int w, float[]? start = null, string? path = null)
    {
        var q = new WindowQuery();
        q.Pack(query, h, w, kept.Dim);
        var best = start ?? Enumerable.Repeat(float.NegativeInfinity, h * w).ToArray();
        if (path is null) KeptMaxDot.Accumulate(q, kept, best);
        else KeptMaxDot.Run(path, q, kept, best);
        return best;
    }

    [Fact]
    public void Subset_maxima_by_hand()
    {
        // Queries (1,0), (0,1), (−1,0) on a 1×3 grid; kept rows (0.6,0.8) and (−1,0). Every largest magnitude is
        // 1, so a step is 1/63 (the kept rows' rounded up to 18 significant bits): queries (63,0), (0,63), (−63,0),
        // kept (38,50) and (−63,0), a dot a sum of level products / 63².
        var kept = KeptRows.Pack([0.6f, 0.8f, -1, 0], 2, 2);
        Assert.Equal(1f / 63, kept.Step, 1e-6f);
        float[] query = [1, 0, 0, 1, -1, 0];
        // q0: max(38/63, −1); q1: max(50/63, 0); q2: max(−38/63, 1).
        Assert.Equal([38f / 63, 50f / 63, 1f], Search(query, kept, 1, 3), new ToleranceComparer(1e-5f));
        // Maxima accumulate into what is there.
        Assert.Equal([0.9f, 50f / 63, 1f], Search(query, kept, 1, 3, [0.9f, float.NegativeInfinity, 0.5f]), new ToleranceComparer(1e-5f));
        // One kept row: every patch's maximum is its dot with it, a negative one included.
        Assert.Equal([-1f, 0f, 1f], Search(query, KeptRows.Pack([-1, 0], 1, 2), 1, 3), new ToleranceComparer(1e-5f));
    }

    [Fact]
    public void Kept_rows_gathered_from_a_grid_are_its_bytes_at_its_step()
    {
        var rng = new Random(5);
        int h = 4, w = 5, d = 7;
        var rows = WindowMaxDotTests.UnitRows(rng, h * w, d);
        var grid = WindowGrid.Pack(rows, h, w, d, 2);
        int[] patches = [0, 13, 19, 6];
        var kept = KeptRows.Gather(grid, patches);
        Assert.Equal(grid.Step, kept.Step);
        var whole = new float[h * w * d];
        grid.CopyRows(whole);
        var values = new float[patches.Length * d];
        kept.CopyRows(values);
        for (int c = 0; c < patches.Length; c++)
            Assert.Equal(whole.AsSpan(patches[c] * d, d).ToArray(), values.AsSpan(c * d, d).ToArray());
        // Two groups of four bytes a row: seven features and one padding byte at the zero offset.
        Assert.Equal(patches.Length * 8, kept.Data.Length);
        Assert.Equal(WindowGrid.Zero, kept.Data[7]);
        Assert.Throws<ArgumentOutOfRangeException>(() => KeptRows.Gather(grid, [20]));
        Assert.Throws<ArgumentException>(() => KeptRows.Gather(grid, []));
    }

    [Fact]
    public void Kept_rows_packed_again_from_their_values_give_the_same_bytes()
    {
        var rows = Enumerable.Range(0, 5 * 9).Select(i => (i - 20) / 33f).ToArray();
        var kept = KeptRows.Pack(rows, 5, 9);
        var back = new float[rows.Length];
        kept.CopyRows(back);
        for (int i = 0; i < rows.Length; i++) Assert.Equal(rows[i], back[i], kept.Step / 2 + 1e-7f);
        // What a restart does with a snapshot of them: the same step and bytes, so the same scores.
        var again = KeptRows.Pack(back, 5, 9);
        Assert.Equal(kept.Step, again.Step);
        Assert.Equal(kept.Data, again.Data);
    }

    /// <summary>Every kernel the machine can run, the shapes the dispatch and the loops treat apart.</summary>
    public static TheoryData<string, int, int, int, int> PathCases()
    {
        var cases = new TheoryData<string, int, int, int, int>();
        foreach (string path in KeptMaxDot.Paths())
        {
            // The default (784 patches, 128 dims, 49 kept: eight blocks of six and one left); fewer patches than
            // a vector, patch counts off the sixteen-lane stride; kept counts under, at and over a block of six (of
            // four on AVX2); dims whose blocks of four are odd and even in number (AVX2 pairs them);
            // dims that are no multiple of four.
            foreach (var (h, w, d, n) in new[] { (28, 28, 128, 49), (1, 3, 7, 1), (2, 5, 3, 6), (4, 17, 33, 7), (6, 40, 12, 12), (5, 7, 19, 5), (3, 20, 5, 13) })
                cases.Add(path, h, w, d, n);
        }
        return cases;
    }

    [Theory]
    [MemberData(nameof(PathCases))]
    public void Each_kernel_matches_the_plain_twin_to_the_bit(string path, int h, int w, int d, int n)
    {
        var rng = new Random(h * 1000 + w * 10 + n + path.Length);
        // Unnormalised values, some of them large: the levels then span the whole range and every sign.
        var query = new float[h * w * d];
        for (int i = 0; i < query.Length; i++) query[i] = (float)rng.NextDouble() - 0.5f;
        var rows = new float[n * d];
        for (int i = 0; i < rows.Length; i++) rows[i] = ((float)rng.NextDouble() - 0.5f) * (i % 7 == 0 ? 3f : 1f);
        var kept = KeptRows.Pack(rows, n, d);
        var start = Enumerable.Range(0, h * w).Select(i => i % 5 == 0 ? 0.01f * i : float.NegativeInfinity).ToArray();
        var fast = Search(query, kept, h, w, (float[])start.Clone(), path);
        var plain = Search(query, kept, h, w, (float[])start.Clone(), "scalar");
        Assert.Equal(plain, fast);
    }

    [Theory]
    [InlineData(28, 28, 128, 49)]
    [InlineData(5, 7, 19, 4)]
    [InlineData(4, 17, 1024, 9)]
    public void The_byte_search_is_within_half_a_step_per_term_of_the_float_dots(int h, int w, int d, int n)
    {
        var rng = new Random(d + n);
        var query = WindowMaxDotTests.UnitRows(rng, h * w, d);
        var rows = WindowMaxDotTests.UnitRows(rng, n, d);
        var bytes = Search(query, KeptRows.Pack(rows, n, d), h, w);
        float sx = WindowGrid.StepOf(query), sy = WindowGrid.StepOf(rows);
        float bound = (sx + sy) / 2 * MathF.Sqrt(d) * 1.05f, worst = 0;
        for (int q = 0; q < h * w; q++)
        {
            float exact = float.NegativeInfinity;
            for (int c = 0; c < n; c++) exact = Math.Max(exact, TensorPrimitives.Dot(query.AsSpan(q * d, d), rows.AsSpan(c * d, d)));
            worst = Math.Max(worst, MathF.Abs(exact - bytes[q]));
        }
        Assert.True(worst <= bound, $"worst {worst} over the bound {bound}");
        Assert.True(worst <= 2 * (sx + sy), $"worst {worst} against steps {sx}, {sy}");
    }

    [Fact]
    public void Mismatched_widths_and_lengths_are_rejected_with_a_message()
    {
        var kept = KeptRows.Pack(new float[3 * 4], 3, 4);
        var q = new WindowQuery();
        q.Pack(new float[2 * 3 * 5], 2, 3, 5);
        var e = Assert.Throws<ArgumentException>(() => KeptMaxDot.Accumulate(q, kept, new float[6]));
        Assert.Contains("5 wide", e.Message);
        q.Pack(new float[2 * 3 * 4], 2, 3, 4);
        Assert.Throws<ArgumentException>(() => KeptMaxDot.Accumulate(q, kept, new float[5]));
        Assert.Throws<ArgumentException>(() => KeptRows.Pack(new float[10], 3, 4));
    }
}
