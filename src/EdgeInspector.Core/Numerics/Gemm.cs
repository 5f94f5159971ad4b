using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace EdgeInspector.Core.Numerics;

/// <summary>
/// Plain products C = Q·Rᵀ against packed references (the max-dot kernel's layout, stored instead of
/// reduced). Used to project features; the nearest-neighbour search itself never stores a product.
/// </summary>
public static class Gemm
{
    /// <summary>output[i·Count + j] = q_i·r_j for every query row and packed reference (bias ignored).</summary>
    public static void Multiply(ReadOnlySpan<float> queries, PackedPanels refs, Span<float> output)
    {
        int d = refs.Dim, nq = queries.Length / d, n = refs.Count;
        if (queries.Length != nq * d) throw new ArgumentException($"Query length {queries.Length} is not a multiple of {d}.", nameof(queries));
        if (output.Length != nq * n) throw new ArgumentException($"Output holds {output.Length}, expected {nq}x{n}.", nameof(output));
        if (Vector512.IsHardwareAccelerated) Multiply512(queries, nq, refs, output);
        else MultiplyScalar(queries, refs, output);
    }

    /// <summary>The plain twin of <see cref="Multiply"/>.</summary>
    public static void MultiplyScalar(ReadOnlySpan<float> queries, PackedPanels refs, Span<float> output)
    {
        int d = refs.Dim, nq = queries.Length / d, n = refs.Count;
        const int W = PackedPanels.PanelWidth;
        Span<float> column = stackalloc float[d];
        ReadOnlySpan<float> data = refs.Data;
        ReadOnlySpan<int> index = refs.ColumnIndex;
        for (int c = 0; c < refs.PanelCount * W; c++)
        {
            int j = index[c];
            if (j < 0) continue;
            int panel = c / W, col = c % W;
            for (int k = 0; k < d; k++) column[k] = data[(panel * d + k) * W + col];
            for (int i = 0; i < nq; i++) output[i * n + j] = TensorPrimitives.Dot(queries.Slice(i * d, d), column);
        }
    }

    private static unsafe void Multiply512(ReadOnlySpan<float> queries, int nq, PackedPanels refs, Span<float> output)
    {
        int d = refs.Dim, n = refs.Count;
        const int W = PackedPanels.PanelWidth;
        Span<float> tile = stackalloc float[4 * W];
        ReadOnlySpan<int> index = refs.ColumnIndex;
        fixed (float* qBase = queries)
        fixed (float* bBase = refs.Data)
        fixed (float* t = tile)
        {
            for (int panel = 0; panel < refs.PanelCount; panel++)
            {
                float* bp = bBase + (long)panel * W * d;
                for (int r = 0; r < nq; r += 4)
                {
                    int rows = Math.Min(4, nq - r);
                    float* a0 = qBase + (long)r * d;
                    // Rows past the end re-read row r: their results are discarded.
                    float* a1 = rows > 1 ? a0 + d : a0, a2 = rows > 2 ? a0 + 2 * d : a0, a3 = rows > 3 ? a0 + 3 * d : a0;
                    Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default,
                        c20 = default, c21 = default, c30 = default, c31 = default;
                    float* b = bp;
                    for (int k = 0; k < d; k++, b += W)
                    {
                        var b0 = Vector512.Load(b);
                        var b1 = Vector512.Load(b + 16);
                        var a = Vector512.Create(a0[k]); c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
                        a = Vector512.Create(a1[k]); c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
                        a = Vector512.Create(a2[k]); c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
                        a = Vector512.Create(a3[k]); c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
                    }
                    c00.Store(t); c01.Store(t + 16); c10.Store(t + 32); c11.Store(t + 48);
                    c20.Store(t + 64); c21.Store(t + 80); c30.Store(t + 96); c31.Store(t + 112);
                    for (int rr = 0; rr < rows; rr++)
                    {
                        for (int c = 0; c < W; c++)
                        {
                            int j = index[panel * W + c];
                            if (j >= 0) output[(r + rr) * n + j] = tile[rr * W + c];
                        }
                    }
                }
            }
        }
    }
}
