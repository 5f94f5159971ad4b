using System.Numerics.Tensors;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Coreset;

/// <summary>
/// Farthest-first (k-center greedy) selection, spec §4.3: repeatedly take the point farthest from
/// everything chosen so far. Without seeds the first point is the given start and is itself selected
/// (anomalib's fix for gh-3459); with seeds the selection continues an existing coreset.
/// Distances are squared Euclidean (argmax is unchanged by the root).
/// </summary>
public static class KCenterGreedy
{
    /// <summary>
    /// Selects up to <paramref name="k"/> row indices of <paramref name="points"/> (n × dim, row-major).
    /// </summary>
    /// <param name="points">Candidates, typically projected.</param>
    /// <param name="dim">Row width.</param>
    /// <param name="k">How many to select.</param>
    /// <param name="seeds">Already chosen centres (m × dim), or empty.</param>
    /// <param name="start">First pick when there are no seeds.</param>
    /// <param name="minDistance">Optional output: each point's final squared distance to the selection (n).</param>
    public static int[] Select(ReadOnlySpan<float> points, int dim, int k, ReadOnlySpan<float> seeds = default, int start = 0, Span<float> minDistance = default)
    {
        int n = points.Length / dim;
        if (points.Length != n * dim) throw new ArgumentException($"{points.Length} floats are not rows of {dim}.", nameof(points));
        k = Math.Clamp(k, 0, n);
        var chosen = new int[k];
        if (k == 0) return chosen;

        float[] delta = new float[n];
        float[] norms = new float[n];
        for (int i = 0; i < n; i++) norms[i] = TensorPrimitives.SumOfSquares(points.Slice(i * dim, dim));

        int picked = 0;
        if (seeds.IsEmpty)
        {
            if ((uint)start >= (uint)n) throw new ArgumentOutOfRangeException(nameof(start));
            delta.AsSpan().Fill(float.PositiveInfinity);
            chosen[picked++] = start;
            Update(points, dim, norms, delta, start);
        }
        else
        {
            SeedDistances(points, dim, norms, seeds, delta);
        }

        for (; picked < k; picked++)
        {
            int j = TensorPrimitives.IndexOfMax(delta);
            if (delta[j] <= 0) // everything is covered exactly: more picks would duplicate points
            {
                Array.Resize(ref chosen, picked);
                break;
            }
            chosen[picked] = j;
            Update(points, dim, norms, delta, j);
        }
        if (!minDistance.IsEmpty) delta.CopyTo(minDistance);
        return chosen;
    }

    private static void Update(ReadOnlySpan<float> points, int dim, float[] norms, float[] delta, int centre)
    {
        ReadOnlySpan<float> c = points.Slice(centre * dim, dim);
        float cn = norms[centre];
        for (int i = 0; i < delta.Length; i++)
        {
            if (delta[i] <= 0) continue;
            float d2 = MathF.Max(0, norms[i] + cn - 2 * TensorPrimitives.Dot(points.Slice(i * dim, dim), c));
            if (d2 < delta[i]) delta[i] = d2;
        }
        delta[centre] = 0;
    }

    /// <summary>
    /// Squared distance of every point to its nearest seed through the max-dot kernel:
    /// with x̃ = [x, 1] and c̃ = [c, −‖c‖²/2], ‖x−c‖² = ‖x‖² − 2·max_c x̃·c̃.
    /// </summary>
    private static void SeedDistances(ReadOnlySpan<float> points, int dim, float[] norms, ReadOnlySpan<float> seeds, float[] delta)
    {
        int n = norms.Length, m = seeds.Length / dim;
        int da = dim + 1;
        var seedAug = new float[m * da];
        for (int s = 0; s < m; s++)
        {
            ReadOnlySpan<float> c = seeds.Slice(s * dim, dim);
            c.CopyTo(seedAug.AsSpan(s * da, dim));
            seedAug[s * da + dim] = -0.5f * TensorPrimitives.SumOfSquares(c);
        }
        var packed = PackedPanels.Pack(seedAug, da);
        var pointAug = new float[n * da];
        for (int i = 0; i < n; i++)
        {
            points.Slice(i * dim, dim).CopyTo(pointAug.AsSpan(i * da, dim));
            pointAug[i * da + dim] = 1f;
        }
        var best = new float[n];
        best.AsSpan().Fill(float.NegativeInfinity);
        MaxDot.Accumulate(pointAug, packed, best);
        for (int i = 0; i < n; i++) delta[i] = MathF.Max(0, norms[i] - 2 * best[i]);
    }
}
