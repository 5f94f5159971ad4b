using System.Numerics;
using System.Runtime.InteropServices;

namespace EdgeInspector.Core.Numerics;

/// <summary>Order statistics used by the scorers. Every method works in caller-provided scratch.</summary>
public static class Stats
{
    /// <summary>
    /// MuSc's interval average (Eq. 2): the mean of the <paramref name="k"/> smallest values.
    /// <paramref name="values"/> is reordered.
    /// </summary>
    public static float MeanOfSmallest(Span<float> values, int k)
    {
        if (values.IsEmpty) throw new ArgumentException("No values to average.", nameof(values));
        k = Math.Clamp(k, 1, values.Length);
        if (k < values.Length) SelectSmallest(values, k);
        double sum = 0;
        for (int i = 0; i < k; i++) sum += values[i];
        return (float)(sum / k);
    }

    /// <summary>
    /// MuSc's interval average from nearest-neighbour dot products (unit vectors):
    /// <paramref name="scores"/>[q] ← the mean, over the <paramref name="k"/> largest of
    /// <paramref name="dots"/>[t·p + q] (t below <paramref name="n"/>, p = scores.Length), of the unit distance
    /// √(2 − 2·dot). The distance falls as the dot rises, so the k largest dots are the k nearest distances,
    /// and only those k are turned into distances.
    /// </summary>
    /// <remarks>
    /// A vector of patches at a time: each one's k largest are kept sorted, and every further dot is sifted
    /// through them by max and min, so the scores need neither a gather per patch nor a selection with
    /// branches. The sum runs from the nearest distance out. <see cref="IntervalAverageOfDotsScalar"/> is the
    /// plain twin.
    /// </remarks>
    public static void IntervalAverageOfDots(ReadOnlySpan<float> dots, int n, int k, Span<float> scores)
    {
        int p = scores.Length;
        ValidateDots(dots, n, k, p);
        k = Math.Min(k, n);
        int l = Vector<float>.Count, q0 = 0;
        if (Vector.IsHardwareAccelerated && k <= MaxSiftedK)
        {
            Span<Vector<float>> kept = stackalloc Vector<float>[k];
            var two = new Vector<float>(2f);
            for (; q0 + l <= p; q0 += l)
            {
                kept.Fill(new Vector<float>(float.NegativeInfinity));
                for (int t = 0; t < n; t++)
                {
                    var v = Vector.LoadUnsafe(ref MemoryMarshal.GetReference(dots), (nuint)(t * p + q0));
                    for (int j = 0; j < kept.Length; j++)
                    {
                        var held = kept[j];
                        kept[j] = Vector.MaxNative(held, v);
                        v = Vector.MinNative(held, v);
                    }
                }
                var sum = Vector<float>.Zero;
                for (int j = 0; j < kept.Length; j++) sum += Vector.SquareRoot(Vector.MaxNative(Vector<float>.Zero, two - two * kept[j]));
                (sum / new Vector<float>(k)).CopyTo(scores.Slice(q0, l));
            }
        }
        if (q0 < p) IntervalAverageOfDotsScalar(dots, n, k, scores, q0);
    }

    /// <summary>The largest k <see cref="IntervalAverageOfDots"/> keeps in vectors; a larger one takes the plain path.</summary>
    private const int MaxSiftedK = 256;

    /// <summary>The plain twin of <see cref="IntervalAverageOfDots"/>: per patch, every dot to a distance, then <see cref="MeanOfSmallest"/>.</summary>
    public static void IntervalAverageOfDotsScalar(ReadOnlySpan<float> dots, int n, int k, Span<float> scores, int from = 0)
    {
        int p = scores.Length;
        ValidateDots(dots, n, k, p);
        var column = System.Buffers.ArrayPool<float>.Shared.Rent(n);
        try
        {
            for (int q = from; q < p; q++)
            {
                for (int t = 0; t < n; t++) column[t] = MaxDot.UnitDistance(dots[t * p + q]);
                scores[q] = MeanOfSmallest(column.AsSpan(0, n), k);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(column);
        }
    }

    private static void ValidateDots(ReadOnlySpan<float> dots, int n, int k, int p)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        if (dots.Length < n * p) throw new ArgumentException($"{n} frames × {p} patches need {n * p} dots, got {dots.Length}.", nameof(dots));
    }

    /// <summary>MuSc's k for an interval fraction over <paramref name="n"/> references: max(1, floor(fraction·n)).</summary>
    public static int IntervalCount(int n, double fraction) => Math.Max(1, (int)Math.Floor(fraction * n + 1e-9));

    /// <summary>FSLC's "max-N" image score: the mean of the <paramref name="n"/> largest values. <paramref name="values"/> is reordered.</summary>
    public static float MeanOfLargest(Span<float> values, int n)
    {
        if (values.IsEmpty) throw new ArgumentException("No values to average.", nameof(values));
        n = Math.Clamp(n, 1, values.Length);
        if (n < values.Length) SelectLargest(values, n);
        double sum = 0;
        for (int i = 0; i < n; i++) sum += values[i];
        return (float)(sum / n);
    }

    /// <summary>Indices of <paramref name="values"/> ordered by descending value (ties in an unspecified order).</summary>
    public static int[] OrderDescending(ReadOnlySpan<float> values)
    {
        var order = new int[values.Length];
        var keys = new float[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            order[i] = i;
            keys[i] = -values[i];
        }
        Array.Sort(keys, order);
        return order;
    }

    /// <summary>Quickselect: after the call the k smallest values occupy [0, k) in some order.</summary>
    public static void SelectSmallest(Span<float> v, int k)
    {
        int lo = 0, hi = v.Length - 1;
        while (lo < hi)
        {
            int p = Partition(v, lo, hi);
            if (p == k - 1 || p == k) return;
            if (p < k) lo = p + 1; else hi = p - 1;
        }
    }

    /// <summary>After the call the n largest values occupy [0, n) in some order.</summary>
    public static void SelectLargest(Span<float> v, int n)
    {
        for (int i = 0; i < v.Length; i++) v[i] = -v[i];
        SelectSmallest(v, n);
        for (int i = 0; i < v.Length; i++) v[i] = -v[i];
    }

    private static int Partition(Span<float> v, int lo, int hi)
    {
        // Median of three keeps sorted input (common for scores) out of the quadratic case.
        int mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo]) (v[mid], v[lo]) = (v[lo], v[mid]);
        if (v[hi] < v[lo]) (v[hi], v[lo]) = (v[lo], v[hi]);
        if (v[hi] < v[mid]) (v[hi], v[mid]) = (v[mid], v[hi]);
        float pivot = v[mid];
        (v[mid], v[hi]) = (v[hi], v[mid]);
        int store = lo;
        for (int i = lo; i < hi; i++)
        {
            if (v[i] < pivot)
            {
                (v[i], v[store]) = (v[store], v[i]);
                store++;
            }
        }
        (v[store], v[hi]) = (v[hi], v[store]);
        return store;
    }

    /// <summary>Linear-interpolated quantile q ∈ [0,1] (numpy's default). <paramref name="values"/> is sorted in place.</summary>
    public static float Quantile(Span<float> values, double q)
    {
        if (values.IsEmpty) throw new ArgumentException("No values for a quantile.", nameof(values));
        values.Sort();
        return SortedQuantile(values, q);
    }

    /// <summary>Linear-interpolated quantile of already sorted values.</summary>
    public static float SortedQuantile(ReadOnlySpan<float> sorted, double q)
    {
        double pos = Math.Clamp(q, 0, 1) * (sorted.Length - 1);
        int i = (int)Math.Floor(pos);
        if (i >= sorted.Length - 1) return sorted[^1];
        double f = pos - i;
        return (float)(sorted[i] + f * (sorted[i + 1] - sorted[i]));
    }

    /// <summary>Median and the normal-consistent median absolute deviation (1.4826·MAD). <paramref name="values"/> is used as scratch: it is overwritten (by the absolute deviations), so pass a copy to keep it.</summary>
    public static (float Median, float Sigma) RobustLocationScale(Span<float> values)
    {
        float median = Quantile(values, 0.5);
        for (int i = 0; i < values.Length; i++) values[i] = MathF.Abs(values[i] - median);
        float mad = Quantile(values, 0.5);
        return (median, 1.4826f * mad);
    }
}
