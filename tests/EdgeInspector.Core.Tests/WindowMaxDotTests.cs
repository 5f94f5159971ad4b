using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Tests;

public sealed class WindowMaxDotTests
{
    private static float[] Search(float[] query, float[] reference, int h, int w, int d, int r, float[]? start = null)
    {
        var grid = WindowGrid.Pack(reference, h, w, d, r);
        var planes = new float[WindowMaxDot.QueryLength(h, w, d)];
        WindowMaxDot.PackQuery(query, h, w, d, planes);
        var best = start ?? Enumerable.Repeat(float.NegativeInfinity, h * w).ToArray();
        WindowMaxDot.Accumulate(planes, grid, best);
        return best;
    }

    [Fact]
    public void Window_maxima_by_hand()
    {
        // A 1×3 grid of 2-D unit vectors. Queries (1,0), (0,1), (1,0); references (0,1), (0.6,0.8), (−1,0).
        float[] query = [1, 0, 0, 1, 1, 0];
        float[] reference = [0, 1, 0.6f, 0.8f, -1, 0];
        // r = 1. q0 sees outside (0), r0 (0), r1 (0.6): 0.6. q1 sees r0 (1), r1 (0.8), r2 (0): 1.
        // q2 sees r1 (0.6), r2 (−1), outside (0): 0.6.
        Assert.Equal([0.6f, 1f, 0.6f], Search(query, reference, 1, 3, 2, 1));
        // r = 0: each query against its own position only, a negative dot included: 0, 0.8, −1.
        Assert.Equal([0f, 0.8f, -1f], Search(query, reference, 1, 3, 2, 0));
        // Maxima accumulate into what is there.
        Assert.Equal([0.5f, 0.8f, 2f], Search(query, reference, 1, 3, 2, 0, [0.5f, float.NegativeInfinity, 2f]));
        // An offset that leaves the grid counts as 0 (a 1×1 grid, r = 1): the lone dot −1 loses to it.
        Assert.Equal([0f], Search([1, 0], [-1, 0], 1, 1, 2, 1));
    }

    [Theory]
    [InlineData(5, 7, 19, 0)]
    [InlineData(5, 7, 19, 1)]
    [InlineData(5, 7, 19, 3)]
    [InlineData(3, 20, 5, 2)]
    [InlineData(28, 28, 128, 2)] // the default: ResNet50 stage 2 grid, 128 scoring dims, a 5×5 window
    [InlineData(1, 33, 16, 4)]
    // r = 2 runs by reference row, five query rows at once: grids with fewer rows than that, and one wider
    // than two vectors.
    [InlineData(1, 9, 7, 2)]
    [InlineData(2, 5, 3, 2)]
    [InlineData(4, 17, 33, 2)]
    [InlineData(6, 40, 12, 2)]
    public void The_fast_path_matches_the_plain_loop(int h, int w, int d, int r)
    {
        var rng = new Random(h * 1000 + w * 10 + r);
        float[] Unit()
        {
            var rows = new float[h * w * d];
            for (int p = 0; p < h * w; p++)
            {
                var row = rows.AsSpan(p * d, d);
                for (int k = 0; k < d; k++) row[k] = (float)rng.NextDouble() - 0.5f;
                float n = MathF.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot(row, row));
                for (int k = 0; k < d; k++) row[k] /= n;
            }
            return rows;
        }
        var query = Unit();
        var reference = Unit();
        var fast = Search(query, reference, h, w, d, r);
        var plain = Enumerable.Repeat(float.NegativeInfinity, h * w).ToArray();
        WindowMaxDot.AccumulateScalar(query, reference, h, w, d, r, plain);
        for (int q = 0; q < h * w; q++) Assert.Equal(plain[q], fast[q], 1e-5f); // FMA against one rounding per step: about 1e-7 per term
    }

    /// <summary>Every kernel the machine can run, each called directly: the dispatch picks one per machine and radius.</summary>
    public static TheoryData<string, int, int, int, int> PathCases()
    {
        var cases = new TheoryData<string, int, int, int, int>();
        foreach (var path in new[] { "512 rows", "512", "vector rows", "vector" })
        {
            foreach (var (h, w, d, r) in new[] { (28, 28, 128, 2), (1, 9, 7, 2), (2, 5, 3, 2), (4, 17, 33, 2), (6, 40, 12, 2), (5, 7, 19, 1), (3, 20, 5, 3) })
            {
                if (path.EndsWith("rows", StringComparison.Ordinal) && r != 2) continue;
                cases.Add(path, h, w, d, r);
            }
        }
        return cases;
    }

    [Theory]
    [MemberData(nameof(PathCases))]
    public void Each_kernel_matches_the_plain_loop(string path, int h, int w, int d, int r)
    {
        if (path.StartsWith("512", StringComparison.Ordinal) && !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) return; // not on this machine
        var rng = new Random(h * 1000 + w * 10 + r + path.Length);
        var query = new float[h * w * d];
        var reference = new float[h * w * d];
        for (int i = 0; i < query.Length; i++)
        {
            query[i] = (float)rng.NextDouble() - 0.5f;
            reference[i] = (float)rng.NextDouble() - 0.5f;
        }
        var grid = WindowGrid.Pack(reference, h, w, d, r);
        var planes = new float[WindowMaxDot.QueryLength(h, w, d)];
        WindowMaxDot.PackQuery(query, h, w, d, planes);
        var fast = Enumerable.Repeat(float.NegativeInfinity, h * w).ToArray();
        switch (path)
        {
            case "512 rows": WindowMaxDot.Accumulate512Rows(planes, grid, fast); break;
            case "512": WindowMaxDot.Accumulate512(planes, grid, fast); break;
            case "vector rows": WindowMaxDot.AccumulateVectorRows(planes, grid, fast); break;
            default: WindowMaxDot.AccumulateVector(planes, grid, fast); break;
        }
        var plain = Enumerable.Repeat(float.NegativeInfinity, h * w).ToArray();
        WindowMaxDot.AccumulateScalar(query, reference, h, w, d, r, plain);
        for (int q = 0; q < h * w; q++) Assert.Equal(plain[q], fast[q], 1e-4f); // unnormalised rows of up to 128 terms
    }

    [Fact]
    public void A_grid_gives_its_rows_back()
    {
        var rows = Enumerable.Range(0, 4 * 6 * 3).Select(i => (float)i).ToArray();
        var grid = WindowGrid.Pack(rows, 4, 6, 3, 2);
        var back = new float[rows.Length];
        grid.CopyRows(back);
        Assert.Equal(rows, back);
        Assert.Equal(4L * grid.Data.Length, WindowGrid.BytesFor(4, 6, 3, 2));
    }

    [Fact]
    public void Wrong_lengths_are_rejected_with_a_message()
    {
        var grid = WindowGrid.Pack(new float[2 * 3 * 4], 2, 3, 4, 1);
        var e = Assert.Throws<ArgumentException>(() => WindowMaxDot.Accumulate(new float[5], grid, new float[6]));
        Assert.Contains("2×3 grid of 4", e.Message);
        Assert.Throws<ArgumentException>(() => WindowMaxDot.Accumulate(new float[WindowMaxDot.QueryLength(2, 3, 4)], grid, new float[5]));
        Assert.Throws<ArgumentException>(() => WindowGrid.Pack(new float[10], 2, 3, 4, 1));
    }
}
