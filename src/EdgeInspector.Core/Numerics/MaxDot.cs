using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeInspector.Core.Numerics;

/// <summary>
/// The nearest-neighbour kernel. For unit vectors the nearest neighbour is the one with the largest
/// dot product (‖x−y‖² = 2 − 2x·y), so a nearest-distance search is a GEMM whose output is reduced by
/// max on the fly: rows (queries) and, for mutual scoring, columns (references) at once. The product
/// matrix is never stored.
/// </summary>
/// <remarks>
/// Loop order: reference panel outer (a panel of 32 columns × Dim stays in L2), blocks of query rows
/// inner, feature index innermost, accumulating a (rows × 32) tile in registers with broadcast-FMA.
/// Per-row maxima are kept as vectors and reduced horizontally once at the end.
/// </remarks>
public static class MaxDot
{
    private const int Rows512 = 8;
    private const int RowsVec = 4;

    /// <summary>
    /// rowMax[i] ← max(rowMax[i], max_j q_i·r_j) over every packed reference j outside
    /// <paramref name="skipSegment"/>; if <paramref name="colMax"/> is not empty (length refs.Count),
    /// colMax[j] ← max(colMax[j], max_i q_i·r_j) too.
    /// </summary>
    public static void Accumulate(ReadOnlySpan<float> queries, PackedPanels refs, Span<float> rowMax, Span<float> colMax = default, int skipSegment = -1)
    {
        int d = refs.Dim;
        int nq = queries.Length / d;
        Validate(queries, refs, rowMax, colMax, nq);
        if (nq == 0 || refs.Count == 0) return;

        if (Vector512.IsHardwareAccelerated)
        {
            Accumulate512(queries, nq, refs, rowMax, colMax, skipSegment);
        }
        else if (Vector.IsHardwareAccelerated && PackedPanels.PanelWidth % (2 * Vector<float>.Count) == 0)
        {
            AccumulateVector(queries, nq, refs, rowMax, colMax, skipSegment);
        }
        else
        {
            AccumulateScalar(queries, refs, rowMax, colMax, skipSegment);
        }
    }

    /// <summary>The plain twin of <see cref="Accumulate"/>: same contract, one dot product at a time.</summary>
    public static void AccumulateScalar(ReadOnlySpan<float> queries, PackedPanels refs, Span<float> rowMax, Span<float> colMax = default, int skipSegment = -1)
    {
        int d = refs.Dim;
        int nq = queries.Length / d;
        Validate(queries, refs, rowMax, colMax, nq);
        ReadOnlySpan<float> data = refs.Data;
        ReadOnlySpan<float> bias = refs.Bias;
        ReadOnlySpan<int> colIndex = refs.ColumnIndex;
        int skipFrom = skipSegment >= 0 ? refs.SegmentFirstPanel(skipSegment) : -1;
        int skipTo = skipSegment >= 0 ? refs.SegmentFirstPanel(skipSegment + 1) : -1;
        for (int panel = 0; panel < refs.PanelCount; panel++)
        {
            if (panel >= skipFrom && panel < skipTo) continue;
            ReadOnlySpan<float> b = data.Slice(panel * PackedPanels.PanelWidth * d, PackedPanels.PanelWidth * d);
            for (int c = 0; c < PackedPanels.PanelWidth; c++)
            {
                int j = colIndex[panel * PackedPanels.PanelWidth + c];
                if (j < 0) continue;
                for (int i = 0; i < nq; i++)
                {
                    ReadOnlySpan<float> q = queries.Slice(i * d, d);
                    float dot = bias[panel * PackedPanels.PanelWidth + c];
                    for (int k = 0; k < d; k++) dot += q[k] * b[k * PackedPanels.PanelWidth + c];
                    if (dot > rowMax[i]) rowMax[i] = dot;
                    if (!colMax.IsEmpty && dot > colMax[j]) colMax[j] = dot;
                }
            }
        }
    }

    private static void Validate(ReadOnlySpan<float> queries, PackedPanels refs, Span<float> rowMax, Span<float> colMax, int nq)
    {
        if (queries.Length != nq * refs.Dim) throw new ArgumentException($"Query length {queries.Length} is not a multiple of the dimension {refs.Dim}.", nameof(queries));
        if (rowMax.Length != nq) throw new ArgumentException($"rowMax has {rowMax.Length} entries for {nq} queries.", nameof(rowMax));
        if (!colMax.IsEmpty && colMax.Length != refs.Count) throw new ArgumentException($"colMax has {colMax.Length} entries for {refs.Count} references.", nameof(colMax));
    }

    internal static unsafe void Accumulate512(ReadOnlySpan<float> queries, int nq, PackedPanels refs, Span<float> rowMax, Span<float> colMax, int skipSegment)
    {
        int d = refs.Dim;
        const int W = PackedPanels.PanelWidth;
        bool wantCols = !colMax.IsEmpty;
        int skipFrom = skipSegment >= 0 ? refs.SegmentFirstPanel(skipSegment) : -1;
        int skipTo = skipSegment >= 0 ? refs.SegmentFirstPanel(skipSegment + 1) : -1;
        Vector512<float>[] rowAccArr = ArrayPool<Vector512<float>>.Shared.Rent(nq);
        Span<float> colPanel = stackalloc float[W];
        try
        {
            Span<Vector512<float>> rowAcc = rowAccArr.AsSpan(0, nq);
            rowAcc.Fill(Vector512.Create(float.NegativeInfinity));
            ReadOnlySpan<int> colIndex = refs.ColumnIndex;
            fixed (float* qBase = queries)
            fixed (float* bBase = refs.Data)
            fixed (float* biasBase = refs.Bias)
            fixed (Vector512<float>* rAcc = rowAcc)
            {
                for (int panel = 0; panel < refs.PanelCount; panel++)
                {
                    if (panel >= skipFrom && panel < skipTo) continue;
                    float* bp = bBase + (long)panel * W * d;
                    // Accumulators start at the per-reference bias (zero unless a lift was set).
                    var z0 = Vector512.Load(biasBase + panel * W);
                    var z1 = Vector512.Load(biasBase + panel * W + 16);
                    var cm0 = Vector512.Create(float.NegativeInfinity);
                    var cm1 = cm0;
                    int r = 0;
                    for (; r + Rows512 <= nq; r += Rows512)
                    {
                        float* a0 = qBase + (long)r * d;
                        float* a1 = a0 + d, a2 = a1 + d, a3 = a2 + d, a4 = a3 + d, a5 = a4 + d, a6 = a5 + d, a7 = a6 + d;
                        Vector512<float> c00 = z0, c01 = z1, c10 = z0, c11 = z1,
                            c20 = z0, c21 = z1, c30 = z0, c31 = z1,
                            c40 = z0, c41 = z1, c50 = z0, c51 = z1,
                            c60 = z0, c61 = z1, c70 = z0, c71 = z1;
                        float* b = bp;
                        for (int k = 0; k < d; k++, b += W)
                        {
                            var b0 = Vector512.Load(b);
                            var b1 = Vector512.Load(b + 16);
                            var a = Vector512.Create(a0[k]); c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
                            a = Vector512.Create(a1[k]); c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
                            a = Vector512.Create(a2[k]); c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
                            a = Vector512.Create(a3[k]); c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
                            a = Vector512.Create(a4[k]); c40 = Vector512.FusedMultiplyAdd(a, b0, c40); c41 = Vector512.FusedMultiplyAdd(a, b1, c41);
                            a = Vector512.Create(a5[k]); c50 = Vector512.FusedMultiplyAdd(a, b0, c50); c51 = Vector512.FusedMultiplyAdd(a, b1, c51);
                            a = Vector512.Create(a6[k]); c60 = Vector512.FusedMultiplyAdd(a, b0, c60); c61 = Vector512.FusedMultiplyAdd(a, b1, c61);
                            a = Vector512.Create(a7[k]); c70 = Vector512.FusedMultiplyAdd(a, b0, c70); c71 = Vector512.FusedMultiplyAdd(a, b1, c71);
                        }
                        // Row maxima: both halves of the panel fold into one running vector per row.
                        rAcc[r] = Vector512.Max(rAcc[r], Vector512.Max(c00, c01));
                        rAcc[r + 1] = Vector512.Max(rAcc[r + 1], Vector512.Max(c10, c11));
                        rAcc[r + 2] = Vector512.Max(rAcc[r + 2], Vector512.Max(c20, c21));
                        rAcc[r + 3] = Vector512.Max(rAcc[r + 3], Vector512.Max(c30, c31));
                        rAcc[r + 4] = Vector512.Max(rAcc[r + 4], Vector512.Max(c40, c41));
                        rAcc[r + 5] = Vector512.Max(rAcc[r + 5], Vector512.Max(c50, c51));
                        rAcc[r + 6] = Vector512.Max(rAcc[r + 6], Vector512.Max(c60, c61));
                        rAcc[r + 7] = Vector512.Max(rAcc[r + 7], Vector512.Max(c70, c71));
                        if (wantCols)
                        {
                            // Column maxima: elementwise max down the tile's rows.
                            cm0 = Vector512.Max(cm0, Vector512.Max(Vector512.Max(Vector512.Max(c00, c10), Vector512.Max(c20, c30)), Vector512.Max(Vector512.Max(c40, c50), Vector512.Max(c60, c70))));
                            cm1 = Vector512.Max(cm1, Vector512.Max(Vector512.Max(Vector512.Max(c01, c11), Vector512.Max(c21, c31)), Vector512.Max(Vector512.Max(c41, c51), Vector512.Max(c61, c71))));
                        }
                    }
                    for (; r < nq; r++)
                    {
                        float* a0 = qBase + (long)r * d;
                        Vector512<float> c00 = z0, c01 = z1;
                        float* b = bp;
                        for (int k = 0; k < d; k++, b += W)
                        {
                            var a = Vector512.Create(a0[k]);
                            c00 = Vector512.FusedMultiplyAdd(a, Vector512.Load(b), c00);
                            c01 = Vector512.FusedMultiplyAdd(a, Vector512.Load(b + 16), c01);
                        }
                        rAcc[r] = Vector512.Max(rAcc[r], Vector512.Max(c00, c01));
                        cm0 = Vector512.Max(cm0, c00);
                        cm1 = Vector512.Max(cm1, c01);
                    }
                    if (wantCols)
                    {
                        cm0.CopyTo(colPanel);
                        cm1.CopyTo(colPanel[16..]);
                        ScatterColumns(colPanel, colIndex.Slice(panel * W, W), colMax);
                    }
                }
                for (int i = 0; i < nq; i++)
                {
                    float m = HorizontalMax(rAcc[i]);
                    if (m > rowMax[i]) rowMax[i] = m;
                }
            }
        }
        finally
        {
            ArrayPool<Vector512<float>>.Shared.Return(rowAccArr);
        }
    }

    internal static unsafe void AccumulateVector(ReadOnlySpan<float> queries, int nq, PackedPanels refs, Span<float> rowMax, Span<float> colMax, int skipSegment)
    {
        int d = refs.Dim;
        const int W = PackedPanels.PanelWidth;
        int vc = Vector<float>.Count;
        int strips = W / (2 * vc);
        bool wantCols = !colMax.IsEmpty;
        int skipFrom = skipSegment >= 0 ? refs.SegmentFirstPanel(skipSegment) : -1;
        int skipTo = skipSegment >= 0 ? refs.SegmentFirstPanel(skipSegment + 1) : -1;
        Vector<float>[] rowAccArr = ArrayPool<Vector<float>>.Shared.Rent(nq);
        Span<float> colPanel = stackalloc float[W];
        try
        {
            Span<Vector<float>> rowAcc = rowAccArr.AsSpan(0, nq);
            rowAcc.Fill(new Vector<float>(float.NegativeInfinity));
            ReadOnlySpan<int> colIndex = refs.ColumnIndex;
            fixed (float* qBase = queries)
            fixed (float* bBase = refs.Data)
            fixed (float* biasBase = refs.Bias)
            fixed (Vector<float>* rAcc = rowAcc)
            {
                for (int panel = 0; panel < refs.PanelCount; panel++)
                {
                    if (panel >= skipFrom && panel < skipTo) continue;
                    colPanel.Fill(float.NegativeInfinity);
                    for (int s = 0; s < strips; s++)
                    {
                        float* bp = bBase + (long)panel * W * d + s * 2 * vc;
                        var z0 = Vector.Load(biasBase + panel * W + s * 2 * vc);
                        var z1 = Vector.Load(biasBase + panel * W + s * 2 * vc + vc);
                        var cm0 = new Vector<float>(float.NegativeInfinity);
                        var cm1 = cm0;
                        int r = 0;
                        for (; r + RowsVec <= nq; r += RowsVec)
                        {
                            float* a0 = qBase + (long)r * d;
                            float* a1 = a0 + d, a2 = a1 + d, a3 = a2 + d;
                            Vector<float> c00 = z0, c01 = z1, c10 = z0, c11 = z1,
                                c20 = z0, c21 = z1, c30 = z0, c31 = z1;
                            float* b = bp;
                            for (int k = 0; k < d; k++, b += W)
                            {
                                var b0 = Vector.Load(b);
                                var b1 = Vector.Load(b + vc);
                                var a = new Vector<float>(a0[k]); c00 = Vector.FusedMultiplyAdd(a, b0, c00); c01 = Vector.FusedMultiplyAdd(a, b1, c01);
                                a = new Vector<float>(a1[k]); c10 = Vector.FusedMultiplyAdd(a, b0, c10); c11 = Vector.FusedMultiplyAdd(a, b1, c11);
                                a = new Vector<float>(a2[k]); c20 = Vector.FusedMultiplyAdd(a, b0, c20); c21 = Vector.FusedMultiplyAdd(a, b1, c21);
                                a = new Vector<float>(a3[k]); c30 = Vector.FusedMultiplyAdd(a, b0, c30); c31 = Vector.FusedMultiplyAdd(a, b1, c31);
                            }
                            rAcc[r] = Vector.Max(rAcc[r], Vector.Max(c00, c01));
                            rAcc[r + 1] = Vector.Max(rAcc[r + 1], Vector.Max(c10, c11));
                            rAcc[r + 2] = Vector.Max(rAcc[r + 2], Vector.Max(c20, c21));
                            rAcc[r + 3] = Vector.Max(rAcc[r + 3], Vector.Max(c30, c31));
                            cm0 = Vector.Max(cm0, Vector.Max(Vector.Max(c00, c10), Vector.Max(c20, c30)));
                            cm1 = Vector.Max(cm1, Vector.Max(Vector.Max(c01, c11), Vector.Max(c21, c31)));
                        }
                        for (; r < nq; r++)
                        {
                            float* a0 = qBase + (long)r * d;
                            Vector<float> c00 = z0, c01 = z1;
                            float* b = bp;
                            for (int k = 0; k < d; k++, b += W)
                            {
                                var a = new Vector<float>(a0[k]);
                                c00 = Vector.FusedMultiplyAdd(a, Vector.Load(b), c00);
                                c01 = Vector.FusedMultiplyAdd(a, Vector.Load(b + vc), c01);
                            }
                            rAcc[r] = Vector.Max(rAcc[r], Vector.Max(c00, c01));
                            cm0 = Vector.Max(cm0, c00);
                            cm1 = Vector.Max(cm1, c01);
                        }
                        cm0.CopyTo(colPanel[(s * 2 * vc)..]);
                        cm1.CopyTo(colPanel[(s * 2 * vc + vc)..]);
                    }
                    if (wantCols) ScatterColumns(colPanel, colIndex.Slice(panel * W, W), colMax);
                }
                for (int i = 0; i < nq; i++)
                {
                    float m = float.NegativeInfinity;
                    for (int l = 0; l < vc; l++) m = MathF.Max(m, rAcc[i][l]);
                    if (m > rowMax[i]) rowMax[i] = m;
                }
            }
        }
        finally
        {
            ArrayPool<Vector<float>>.Shared.Return(rowAccArr);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScatterColumns(ReadOnlySpan<float> panelMax, ReadOnlySpan<int> index, Span<float> colMax)
    {
        for (int c = 0; c < panelMax.Length; c++)
        {
            int j = index[c];
            if (j >= 0 && panelMax[c] > colMax[j]) colMax[j] = panelMax[c];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax(Vector512<float> v)
    {
        var h = Vector256.Max(v.GetLower(), v.GetUpper());
        var q = Vector128.Max(h.GetLower(), h.GetUpper());
        return MathF.Max(MathF.Max(q[0], q[1]), MathF.Max(q[2], q[3]));
    }

    /// <summary>Euclidean distance between unit vectors from their dot product, clamped before the root.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float UnitDistance(float dot) => MathF.Sqrt(MathF.Max(0f, 2f - 2f * dot));
}
