using System.Numerics;
using System.Runtime.Intrinsics;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Tests;

public sealed class MaxDotTests
{
    [Fact]
    public void Nearest_unit_vector_by_hand()
    {
        // References (1,0) and (0,1); query (0.6,0.8): the best dot is 0.8, distance sqrt(2 - 1.6).
        var refs = PackedPanels.Pack([1, 0, 0, 1], 2);
        var row = new[] { float.NegativeInfinity };
        var col = new[] { float.NegativeInfinity, float.NegativeInfinity };
        MaxDot.Accumulate([0.6f, 0.8f], refs, row, col);
        Assert.Equal(0.8f, row[0], 6);
        Assert.Equal(0.6f, col[0], 6);
        Assert.Equal(0.8f, col[1], 6);
        Assert.Equal(MathF.Sqrt(0.4f), MaxDot.UnitDistance(row[0]), 5);
    }

    [Fact]
    public void Distance_is_clamped_before_the_root()
    {
        // Rounding can push a self-dot a hair above 1; the distance must be 0, never NaN.
        Assert.Equal(0f, MaxDot.UnitDistance(1.0000001f));
    }

    public static TheoryData<int, int, int> Shapes()
    {
        var data = new TheoryData<int, int, int>();
        foreach (int nq in new[] { 0, 1, 7, 8, 9, 31, 33 })
        {
            foreach (int nr in new[] { 1, 31, 32, 33, 65 })
            {
                foreach (int d in new[] { 1, 7, 16, 17, 33 }) data.Add(nq, nr, d);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Fast_paths_match_the_plain_loop(int nq, int nr, int d)
    {
        var rng = new Random(nq * 1000 + nr * 10 + d);
        var q = Random(rng, nq * d);
        var r = Random(rng, nr * d);
        // Two segments of uneven length exercise per-segment padding.
        int first = nr / 3;
        var packed = new PackedPanels();
        packed.Repack(r, d, [first, nr - first]);

        for (int skip = -1; skip <= 1; skip++)
        {
            var (rowRef, colRef) = Run(q, packed, nq, nr, skip, (qs, p, row, col, s) => MaxDot.AccumulateScalar(qs, p, row, col, s));
            var (rowNaive, colNaive) = Naive(q, r, nq, nr, d, skip < 0 ? -1 : skip == 0 ? 0 : first, skip < 0 ? -1 : skip == 0 ? first : nr);
            AssertClose(rowNaive, rowRef);
            AssertClose(colNaive, colRef);

            var (row, col) = Run(q, packed, nq, nr, skip, (qs, p, rw, cl, s) => MaxDot.Accumulate(qs, p, rw, cl, s));
            AssertClose(rowRef, row);
            AssertClose(colRef, col);
            if (Vector512.IsHardwareAccelerated)
            {
                (row, col) = Run(q, packed, nq, nr, skip, (qs, p, rw, cl, s) => MaxDot.Accumulate512(qs, qs.Length / d, p, rw, cl, s));
                AssertClose(rowRef, row);
                AssertClose(colRef, col);
            }
            if (Vector.IsHardwareAccelerated)
            {
                (row, col) = Run(q, packed, nq, nr, skip, (qs, p, rw, cl, s) => MaxDot.AccumulateVector(qs, qs.Length / d, p, rw, cl, s));
                AssertClose(rowRef, row);
                AssertClose(colRef, col);
            }
        }
    }

    [Theory]
    [InlineData(9, 33, 17)]
    [InlineData(33, 65, 7)]
    [InlineData(1, 31, 1)]
    public void Bias_is_added_to_every_dot_in_every_path(int nq, int nr, int d)
    {
        var rng = new Random(nq + nr + d);
        var q = Random(rng, nq * d);
        var r = Random(rng, nr * d);
        var bias = Random(rng, nr);
        var packed = new PackedPanels();
        packed.Repack(r, d, [nr / 2, nr - nr / 2]);
        packed.SetBias(bias);
        // Naive: max_j (q·r_j + bias_j).
        var expected = new float[nq];
        for (int i = 0; i < nq; i++)
        {
            expected[i] = float.NegativeInfinity;
            for (int j = 0; j < nr; j++)
            {
                double dot = bias[j];
                for (int k = 0; k < d; k++) dot += q[i * d + k] * r[j * d + k];
                expected[i] = MathF.Max(expected[i], (float)dot);
            }
        }
        var (row, _) = Run(q, packed, nq, nr, -1, (qs, p, rw, cl, s) => MaxDot.AccumulateScalar(qs, p, rw, cl, s));
        AssertClose(expected, row);
        (row, _) = Run(q, packed, nq, nr, -1, (qs, p, rw, cl, s) => MaxDot.Accumulate(qs, p, rw, cl, s));
        AssertClose(expected, row);
        if (Vector.IsHardwareAccelerated)
        {
            (row, _) = Run(q, packed, nq, nr, -1, (qs, p, rw, cl, s) => MaxDot.AccumulateVector(qs, qs.Length / d, p, rw, cl, s));
            AssertClose(expected, row);
        }
    }

    [Fact]
    public void Accumulates_into_existing_maxima()
    {
        var refs = PackedPanels.Pack([1, 0], 2);
        var row = new[] { 5f, float.NegativeInfinity };
        MaxDot.Accumulate([0.5f, 0, -1, 0], refs, row);
        Assert.Equal(5f, row[0]); // an earlier, larger maximum is kept
        Assert.Equal(-1f, row[1]);
    }

    [Fact]
    public void Wrong_lengths_are_rejected_with_a_message()
    {
        var refs = PackedPanels.Pack([1, 0], 2);
        var e = Assert.Throws<ArgumentException>(() => MaxDot.Accumulate([1, 0, 0], refs, new float[1]));
        Assert.Contains("dimension 2", e.Message);
    }

    private delegate void Kernel(float[] q, PackedPanels p, float[] row, float[] col, int skip);

    private static (float[] Row, float[] Col) Run(float[] q, PackedPanels p, int nq, int nr, int skip, Kernel k)
    {
        var row = Enumerable.Repeat(float.NegativeInfinity, nq).ToArray();
        var col = Enumerable.Repeat(float.NegativeInfinity, nr).ToArray();
        k(q, p, row, col, skip);
        return (row, col);
    }

    private static (float[] Row, float[] Col) Naive(float[] q, float[] r, int nq, int nr, int d, int skipFrom, int skipTo)
    {
        var row = Enumerable.Repeat(float.NegativeInfinity, nq).ToArray();
        var col = Enumerable.Repeat(float.NegativeInfinity, nr).ToArray();
        for (int i = 0; i < nq; i++)
        {
            for (int j = 0; j < nr; j++)
            {
                if (j >= skipFrom && j < skipTo) continue;
                double dot = 0;
                for (int k = 0; k < d; k++) dot += q[i * d + k] * r[j * d + k];
                row[i] = MathF.Max(row[i], (float)dot);
                col[j] = MathF.Max(col[j], (float)dot);
            }
        }
        return (row, col);
    }

    private static float[] Random(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNegativeInfinity(expected[i])) Assert.True(float.IsNegativeInfinity(actual[i]), $"index {i}: expected -inf, got {actual[i]}");
            else Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-4f * (1 + MathF.Abs(expected[i])), $"index {i}: expected {expected[i]}, got {actual[i]}");
        }
    }
}
