using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace EdgeInspector.Core.Numerics;

/// <summary>
/// The window search: each query patch's largest dot product with the reference frame's patches within
/// (2r + 1)² positions of its own (an offset that leaves the grid counts as a dot of 0: two unit vectors
/// at right angles). On a part that sits in place its nearest patch in another frame is near the same
/// position, so this finds what a search of the whole frame would, at (2r + 1)² / P of its work.
/// </summary>
/// <remarks>
/// Per query row and offset row: the 2r + 1 column offsets are 2r + 1 accumulators over the feature index,
/// each fed by one unaligned load of the shifted reference row, four at a time, so every query load
/// serves four FMAs. The queries are laid out as the references are, without the padding
/// (<see cref="PackQuery"/>); the lanes past the grid's width are zero and are never written back.
/// </remarks>
public static class WindowMaxDot
{
    /// <summary>Floats per vector the layout is made for.</summary>
    public static int Lanes => Vector512.IsHardwareAccelerated ? Vector512<float>.Count : Vector<float>.Count;

    /// <summary>A query row's stride: the width rounded up to whole vectors.</summary>
    public static int QueryStride(int width) => (width + Lanes - 1) / Lanes * Lanes;

    /// <summary>Floats <see cref="PackQuery"/> writes for a grid of this shape.</summary>
    public static int QueryLength(int height, int width, int dim) => height * dim * QueryStride(width);

    /// <summary>Lays out a frame's view (row-major patches) as queries: [H][D][QueryStride], zero past the width.</summary>
    public static void PackQuery(ReadOnlySpan<float> rows, int height, int width, int dim, Span<float> planes)
    {
        int s = QueryStride(width);
        if (planes.Length < height * dim * s) throw new ArgumentException($"{height * dim * s} floats needed.", nameof(planes));
        planes[..(height * dim * s)].Clear();
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                var patch = rows.Slice((y * width + x) * dim, dim);
                int at = y * dim * s + x;
                for (int k = 0; k < dim; k++) planes[at + k * s] = patch[k];
            }
        }
    }

    /// <summary>
    /// best[q] ← max(best[q], max over the window of q of q·r), for the queries <paramref name="query"/>
    /// (as <see cref="PackQuery"/> lays them out) against <paramref name="grid"/>.
    /// </summary>
    public static void Accumulate(ReadOnlySpan<float> query, WindowGrid grid, Span<float> best)
    {
        int h = grid.Height, w = grid.Width, d = grid.Dim;
        if (query.Length < QueryLength(h, w, d)) throw new ArgumentException($"The queries hold {query.Length} floats; a {h}×{w} grid of {d} needs {QueryLength(h, w, d)}.", nameof(query));
        if (best.Length < h * w) throw new ArgumentException($"{best.Length} maxima for {h * w} patches.", nameof(best));
        if (grid.Data.Length < h * d * grid.Stride + QueryStride(w) - w) throw new ArgumentException("The grid was laid out for another vector width.", nameof(grid));
        if (Vector512.IsHardwareAccelerated && grid.Radius == 2) Accumulate512Rows(query, grid, best);
        else if (Vector512.IsHardwareAccelerated) Accumulate512(query, grid, best);
        else if (Vector.IsHardwareAccelerated && grid.Radius == 2) AccumulateVectorRows(query, grid, best);
        else AccumulateVector(query, grid, best);
    }

    /// <summary>
    /// The 5×5 window by reference row for <see cref="Vector{T}"/> (AVX2, NEON): as
    /// <see cref="Accumulate512Rows"/>, but two query rows at a time, since AVX2 has 16 vector registers:
    /// 10 accumulators, the 5 shifted references and a query fill them. Each reference row is loaded for
    /// three pairs of query rows, the last pair a single row: 20 loads for 25 FMAs, where the by-query-row
    /// order pays 35.
    /// </summary>
    internal static void AccumulateVectorRows(ReadOnlySpan<float> query, WindowGrid grid, Span<float> best) => ByReferenceRow(query, grid, best, wide: false);

    /// <summary>One reference row (<paramref name="gy"/>) against the query rows within 2 of it, two at a time, into <paramref name="t0"/> (row maxima, [H][QueryStride]).</summary>
    private static void ReferenceRowVector(ref float q0, ref float g0, ref float t0, int gy, int h, int d, int qs, int gs)
    {
        const int R = 2;
        int l = Vector<float>.Count;
        ref float g = ref Unsafe.Add(ref g0, gy * d * gs);
        // Query rows gy − 2 … gy + 2 in pairs; a row outside the grid is skipped.
        for (int ya = gy - R; ya <= gy + R; ya += 2)
        {
            int yb = ya + 1;
            bool hasA = ya >= 0 && ya < h, hasB = yb <= gy + R && yb >= 0 && yb < h;
            if (!hasA && !hasB) continue;
            for (int x0 = 0; x0 < qs; x0 += l)
            {
                if (hasA && hasB)
                {
                    RowsVector(ref Unsafe.Add(ref q0, ya * d * qs + x0), ref Unsafe.Add(ref q0, yb * d * qs + x0), ref Unsafe.Add(ref g, x0), d, qs, gs, out var ma, out var mb);
                    KeepVector(ref Unsafe.Add(ref t0, ya * qs + x0), ma);
                    KeepVector(ref Unsafe.Add(ref t0, yb * qs + x0), mb);
                }
                else
                {
                    int y = hasA ? ya : yb;
                    KeepVector(ref Unsafe.Add(ref t0, y * qs + x0), RowVector(ref Unsafe.Add(ref q0, y * d * qs + x0), ref Unsafe.Add(ref g, x0), d, qs, gs));
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void KeepVector(ref float at, Vector<float> m) => Vector.Max(Vector.LoadUnsafe(ref at), m).StoreUnsafe(ref at);

    /// <summary>Two query rows against one reference row at offsets 0…4: each row's maximum over the offsets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RowsVector(ref float qa, ref float qb, ref float g, int d, int qs, int gs, out Vector<float> ma, out Vector<float> mb)
    {
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default;
        Vector<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default;
        for (int k = 0; k < d; k++)
        {
            var g0 = Vector.LoadUnsafe(ref g);
            var g1 = Vector.LoadUnsafe(ref g, 1);
            var g2 = Vector.LoadUnsafe(ref g, 2);
            var g3 = Vector.LoadUnsafe(ref g, 3);
            var g4 = Vector.LoadUnsafe(ref g, 4);
            var q = Vector.LoadUnsafe(ref qa);
            a0 = Vector.FusedMultiplyAdd(q, g0, a0); a1 = Vector.FusedMultiplyAdd(q, g1, a1); a2 = Vector.FusedMultiplyAdd(q, g2, a2); a3 = Vector.FusedMultiplyAdd(q, g3, a3); a4 = Vector.FusedMultiplyAdd(q, g4, a4);
            q = Vector.LoadUnsafe(ref qb);
            b0 = Vector.FusedMultiplyAdd(q, g0, b0); b1 = Vector.FusedMultiplyAdd(q, g1, b1); b2 = Vector.FusedMultiplyAdd(q, g2, b2); b3 = Vector.FusedMultiplyAdd(q, g3, b3); b4 = Vector.FusedMultiplyAdd(q, g4, b4);
            g = ref Unsafe.Add(ref g, gs);
            qa = ref Unsafe.Add(ref qa, qs);
            qb = ref Unsafe.Add(ref qb, qs);
        }
        ma = Vector.Max(Vector.Max(Vector.Max(a0, a1), Vector.Max(a2, a3)), a4);
        mb = Vector.Max(Vector.Max(Vector.Max(b0, b1), Vector.Max(b2, b3)), b4);
    }

    /// <summary>One query row against one reference row at offsets 0…4: its maximum over the offsets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> RowVector(ref float qa, ref float g, int d, int qs, int gs)
    {
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default;
        for (int k = 0; k < d; k++)
        {
            var q = Vector.LoadUnsafe(ref qa);
            a0 = Vector.FusedMultiplyAdd(q, Vector.LoadUnsafe(ref g), a0);
            a1 = Vector.FusedMultiplyAdd(q, Vector.LoadUnsafe(ref g, 1), a1);
            a2 = Vector.FusedMultiplyAdd(q, Vector.LoadUnsafe(ref g, 2), a2);
            a3 = Vector.FusedMultiplyAdd(q, Vector.LoadUnsafe(ref g, 3), a3);
            a4 = Vector.FusedMultiplyAdd(q, Vector.LoadUnsafe(ref g, 4), a4);
            g = ref Unsafe.Add(ref g, gs);
            qa = ref Unsafe.Add(ref qa, qs);
        }
        return Vector.Max(Vector.Max(Vector.Max(a0, a1), Vector.Max(a2, a3)), a4);
    }

    /// <summary>
    /// The 5×5 window (r = 2, the default) by reference row: one row of the grid against the five query rows
    /// whose window holds it, at the five column offsets. Each shifted reference load then serves five
    /// query rows and each query load five offsets, 25 FMAs for 10 loads, where the by-query-row order
    /// (<see cref="Accumulate512"/>) pays 12 loads, most of them split across cache lines, for 10 FMAs and
    /// runs at the loads' speed. 25 accumulators, 5 shifted references and a query fill 31 of the 32
    /// registers. Every dot product is summed over the features in the same order as the other paths,
    /// so the maxima are the same to the bit.
    /// </summary>
    internal static void Accumulate512Rows(ReadOnlySpan<float> query, WindowGrid grid, Span<float> best) => ByReferenceRow(query, grid, best, wide: true);

    /// <summary>
    /// The driver of the by-reference-row kernels: each query row's maxima gather in a scratch grid of rows
    /// ([H][QueryStride], on the stack for the usual grids) as the reference rows go by, and are written
    /// back at the end. A query row whose window reaches above or below the grid meets a dot of 0 there.
    /// </summary>
    private static void ByReferenceRow(ReadOnlySpan<float> query, WindowGrid grid, Span<float> best, bool wide)
    {
        int h = grid.Height, w = grid.Width, d = grid.Dim, gs = grid.Stride, qs = QueryStride(w);
        const int R = 2;
        ref float q0 = ref MemoryMarshal.GetReference(query);
        ref float g0 = ref MemoryMarshal.GetArrayDataReference(grid.Data);
        int cells = h * qs;
        float[]? rented = cells > 4096 ? ArrayPool<float>.Shared.Rent(cells) : null;
        Span<float> top = rented is null ? stackalloc float[cells] : rented.AsSpan(0, cells);
        try
        {
            for (int y = 0; y < h; y++) top.Slice(y * qs, qs).Fill(y < R || y + R >= h ? 0f : float.NegativeInfinity);
            ref float t0 = ref MemoryMarshal.GetReference(top);
            for (int gy = 0; gy < h; gy++)
            {
                if (wide) ReferenceRow512(ref q0, ref g0, ref t0, gy, h, d, qs, gs);
                else ReferenceRowVector(ref q0, ref g0, ref t0, gy, h, d, qs, gs);
            }
            for (int y = 0; y < h; y++) WriteBack(top.Slice(y * qs, w), best.Slice(y * w, w));
        }
        finally
        {
            if (rented is not null) ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>One reference row (<paramref name="gy"/>) against the five query rows within 2 of it, into <paramref name="t0"/>.</summary>
    private static void ReferenceRow512(ref float q0, ref float g0, ref float t0, int gy, int h, int d, int qs, int gs)
    {
        const int L = 16;
        // Query rows gy − 2 … gy + 2; one outside the grid is computed on a row inside it and not kept.
        int ya = Math.Clamp(gy - 2, 0, h - 1), yb = Math.Clamp(gy - 1, 0, h - 1), yc = gy, yd = Math.Min(gy + 1, h - 1), ye = Math.Min(gy + 2, h - 1);
        for (int x0 = 0; x0 < qs; x0 += L)
        {
            Rows512(
                ref Unsafe.Add(ref q0, ya * d * qs + x0), ref Unsafe.Add(ref q0, yb * d * qs + x0), ref Unsafe.Add(ref q0, yc * d * qs + x0),
                ref Unsafe.Add(ref q0, yd * d * qs + x0), ref Unsafe.Add(ref q0, ye * d * qs + x0),
                ref Unsafe.Add(ref g0, gy * d * gs + x0), d, qs, gs,
                out var ma, out var mb, out var mc, out var md, out var me);
            if (gy - 2 >= 0) Keep(ref Unsafe.Add(ref t0, (gy - 2) * qs + x0), ma);
            if (gy - 1 >= 0) Keep(ref Unsafe.Add(ref t0, (gy - 1) * qs + x0), mb);
            Keep(ref Unsafe.Add(ref t0, gy * qs + x0), mc);
            if (gy + 1 < h) Keep(ref Unsafe.Add(ref t0, (gy + 1) * qs + x0), md);
            if (gy + 2 < h) Keep(ref Unsafe.Add(ref t0, (gy + 2) * qs + x0), me);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Keep(ref float at, Vector512<float> m) => Vector512.Max(Vector512.LoadUnsafe(ref at), m).StoreUnsafe(ref at);

    /// <summary>Five query rows (16 lanes each) against one reference row at offsets 0…4: each row's maximum over the offsets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Rows512(ref float qa, ref float qb, ref float qc, ref float qd, ref float qe, ref float g, int d, int qs, int gs,
        out Vector512<float> ma, out Vector512<float> mb, out Vector512<float> mc, out Vector512<float> md, out Vector512<float> me)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default;
        Vector512<float> d0 = default, d1 = default, d2 = default, d3 = default, d4 = default;
        Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default, e4 = default;
        // The six pointers step one feature plane per iteration: indexing them by k from the rows' starts
        // instead costs a multiply per load, more integer work than the loop has room for.
        for (int k = 0; k < d; k++)
        {
            var g0 = Vector512.LoadUnsafe(ref g);
            var g1 = Vector512.LoadUnsafe(ref g, 1);
            var g2 = Vector512.LoadUnsafe(ref g, 2);
            var g3 = Vector512.LoadUnsafe(ref g, 3);
            var g4 = Vector512.LoadUnsafe(ref g, 4);
            var q = Vector512.LoadUnsafe(ref qa);
            a0 = Vector512.FusedMultiplyAdd(q, g0, a0); a1 = Vector512.FusedMultiplyAdd(q, g1, a1); a2 = Vector512.FusedMultiplyAdd(q, g2, a2); a3 = Vector512.FusedMultiplyAdd(q, g3, a3); a4 = Vector512.FusedMultiplyAdd(q, g4, a4);
            q = Vector512.LoadUnsafe(ref qb);
            b0 = Vector512.FusedMultiplyAdd(q, g0, b0); b1 = Vector512.FusedMultiplyAdd(q, g1, b1); b2 = Vector512.FusedMultiplyAdd(q, g2, b2); b3 = Vector512.FusedMultiplyAdd(q, g3, b3); b4 = Vector512.FusedMultiplyAdd(q, g4, b4);
            q = Vector512.LoadUnsafe(ref qc);
            c0 = Vector512.FusedMultiplyAdd(q, g0, c0); c1 = Vector512.FusedMultiplyAdd(q, g1, c1); c2 = Vector512.FusedMultiplyAdd(q, g2, c2); c3 = Vector512.FusedMultiplyAdd(q, g3, c3); c4 = Vector512.FusedMultiplyAdd(q, g4, c4);
            q = Vector512.LoadUnsafe(ref qd);
            d0 = Vector512.FusedMultiplyAdd(q, g0, d0); d1 = Vector512.FusedMultiplyAdd(q, g1, d1); d2 = Vector512.FusedMultiplyAdd(q, g2, d2); d3 = Vector512.FusedMultiplyAdd(q, g3, d3); d4 = Vector512.FusedMultiplyAdd(q, g4, d4);
            q = Vector512.LoadUnsafe(ref qe);
            e0 = Vector512.FusedMultiplyAdd(q, g0, e0); e1 = Vector512.FusedMultiplyAdd(q, g1, e1); e2 = Vector512.FusedMultiplyAdd(q, g2, e2); e3 = Vector512.FusedMultiplyAdd(q, g3, e3); e4 = Vector512.FusedMultiplyAdd(q, g4, e4);
            g = ref Unsafe.Add(ref g, gs);
            qa = ref Unsafe.Add(ref qa, qs);
            qb = ref Unsafe.Add(ref qb, qs);
            qc = ref Unsafe.Add(ref qc, qs);
            qd = ref Unsafe.Add(ref qd, qs);
            qe = ref Unsafe.Add(ref qe, qs);
        }
        ma = Vector512.Max(Vector512.Max(Vector512.Max(a0, a1), Vector512.Max(a2, a3)), a4);
        mb = Vector512.Max(Vector512.Max(Vector512.Max(b0, b1), Vector512.Max(b2, b3)), b4);
        mc = Vector512.Max(Vector512.Max(Vector512.Max(c0, c1), Vector512.Max(c2, c3)), c4);
        md = Vector512.Max(Vector512.Max(Vector512.Max(d0, d1), Vector512.Max(d2, d3)), d4);
        me = Vector512.Max(Vector512.Max(Vector512.Max(e0, e1), Vector512.Max(e2, e3)), e4);
    }

    internal static void Accumulate512(ReadOnlySpan<float> query, WindowGrid grid, Span<float> best)
    {
        int h = grid.Height, w = grid.Width, d = grid.Dim, r = grid.Radius, span = 2 * r + 1, gs = grid.Stride, qs = QueryStride(w);
        const int L = 16;
        ref float q0 = ref MemoryMarshal.GetReference(query);
        ref float g0 = ref MemoryMarshal.GetArrayDataReference(grid.Data);
        Span<float> lane = stackalloc float[L];
        for (int y = 0; y < h; y++)
        {
            int x0 = 0;
            // Two vectors of queries side by side and five offsets: ten accumulators, enough to hide the FMA's
            // latency, and each query load serves five FMAs.
            for (; x0 + 2 * L <= qs; x0 += 2 * L)
            {
                ref float q = ref Unsafe.Add(ref q0, y * d * qs + x0);
                var top = Vector512.Create(float.NegativeInfinity);
                if (y < r || y + r >= h) top = Vector512<float>.Zero; // a row of the window above or below the grid
                var topNext = top;
                for (int gy = Math.Max(0, y - r); gy <= Math.Min(h - 1, y + r); gy++)
                {
                    ref float g = ref Unsafe.Add(ref g0, gy * d * gs + x0);
                    int dx = 0;
                    for (; dx + 5 <= span; dx += 5) Five512(ref q, ref Unsafe.Add(ref g, dx), d, qs, gs, ref top, ref topNext);
                    for (; dx < span; dx++)
                    {
                        top = Vector512.Max(top, One512(ref q, ref Unsafe.Add(ref g, dx), d, qs, gs));
                        topNext = Vector512.Max(topNext, One512(ref Unsafe.Add(ref q, L), ref Unsafe.Add(ref g, dx + L), d, qs, gs));
                    }
                }
                top.CopyTo(lane);
                WriteBack(lane, best.Slice(y * w + x0, Math.Min(L, w - x0)));
                if (x0 + L < w)
                {
                    topNext.CopyTo(lane);
                    WriteBack(lane, best.Slice(y * w + x0 + L, Math.Min(L, w - x0 - L)));
                }
            }
            for (; x0 < w; x0 += L)
            {
                ref float q = ref Unsafe.Add(ref q0, y * d * qs + x0);
                var top = Vector512.Create(float.NegativeInfinity);
                if (y < r || y + r >= h) top = Vector512<float>.Zero;
                for (int gy = Math.Max(0, y - r); gy <= Math.Min(h - 1, y + r); gy++)
                {
                    ref float g = ref Unsafe.Add(ref g0, gy * d * gs + x0);
                    for (int dx = 0; dx < span; dx++) top = Vector512.Max(top, One512(ref q, ref Unsafe.Add(ref g, dx), d, qs, gs));
                }
                top.CopyTo(lane);
                WriteBack(lane, best.Slice(y * w + x0, Math.Min(L, w - x0)));
            }
        }
    }

    /// <summary>Two query vectors (at q and q + 16) against five consecutive offsets (g + 0..4, and 16 on).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Five512(ref float q, ref float g, int d, int qs, int gs, ref Vector512<float> top, ref Vector512<float> topNext)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default;
        for (int k = 0; k < d; k++)
        {
            ref float qk = ref Unsafe.Add(ref q, k * qs);
            ref float gk = ref Unsafe.Add(ref g, k * gs);
            var qa = Vector512.LoadUnsafe(ref qk);
            var qb = Vector512.LoadUnsafe(ref qk, 16);
            a0 = Vector512.FusedMultiplyAdd(qa, Vector512.LoadUnsafe(ref gk), a0);
            a1 = Vector512.FusedMultiplyAdd(qa, Vector512.LoadUnsafe(ref gk, 1), a1);
            a2 = Vector512.FusedMultiplyAdd(qa, Vector512.LoadUnsafe(ref gk, 2), a2);
            a3 = Vector512.FusedMultiplyAdd(qa, Vector512.LoadUnsafe(ref gk, 3), a3);
            a4 = Vector512.FusedMultiplyAdd(qa, Vector512.LoadUnsafe(ref gk, 4), a4);
            b0 = Vector512.FusedMultiplyAdd(qb, Vector512.LoadUnsafe(ref gk, 16), b0);
            b1 = Vector512.FusedMultiplyAdd(qb, Vector512.LoadUnsafe(ref gk, 17), b1);
            b2 = Vector512.FusedMultiplyAdd(qb, Vector512.LoadUnsafe(ref gk, 18), b2);
            b3 = Vector512.FusedMultiplyAdd(qb, Vector512.LoadUnsafe(ref gk, 19), b3);
            b4 = Vector512.FusedMultiplyAdd(qb, Vector512.LoadUnsafe(ref gk, 20), b4);
        }
        top = Vector512.Max(top, Vector512.Max(Vector512.Max(Vector512.Max(a0, a1), Vector512.Max(a2, a3)), a4));
        topNext = Vector512.Max(topNext, Vector512.Max(Vector512.Max(Vector512.Max(b0, b1), Vector512.Max(b2, b3)), b4));
    }

    /// <summary>One query vector against one offset.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> One512(ref float q, ref float g, int d, int qs, int gs)
    {
        Vector512<float> a = default, b = default;
        int k = 0;
        for (; k + 2 <= d; k += 2)
        {
            a = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref q, (nuint)(k * qs)), Vector512.LoadUnsafe(ref g, (nuint)(k * gs)), a);
            b = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref q, (nuint)((k + 1) * qs)), Vector512.LoadUnsafe(ref g, (nuint)((k + 1) * gs)), b);
        }
        if (k < d) a = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref q, (nuint)(k * qs)), Vector512.LoadUnsafe(ref g, (nuint)(k * gs)), a);
        return a + b;
    }

    internal static void AccumulateVector(ReadOnlySpan<float> query, WindowGrid grid, Span<float> best)
    {
        int h = grid.Height, w = grid.Width, d = grid.Dim, r = grid.Radius, span = 2 * r + 1, gs = grid.Stride, qs = QueryStride(w);
        int l = Vector<float>.Count;
        ref float q0 = ref MemoryMarshal.GetReference(query);
        ref float g0 = ref MemoryMarshal.GetArrayDataReference(grid.Data);
        Span<float> lane = stackalloc float[l];
        for (int y = 0; y < h; y++)
        {
            for (int x0 = 0; x0 < w; x0 += l)
            {
                ref float q = ref Unsafe.Add(ref q0, y * d * qs + x0);
                var top = new Vector<float>(float.NegativeInfinity);
                if (y < r || y + r >= h) top = Vector<float>.Zero;
                for (int gy = Math.Max(0, y - r); gy <= Math.Min(h - 1, y + r); gy++)
                {
                    ref float g = ref Unsafe.Add(ref g0, gy * d * gs + x0);
                    int dx = 0;
                    for (; dx + 4 <= span; dx += 4)
                    {
                        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
                        for (int k = 0; k < d; k++)
                        {
                            var qv = Vector.LoadUnsafe(ref q, (nuint)(k * qs));
                            ref float gk = ref Unsafe.Add(ref g, k * gs + dx);
                            a0 = Vector.FusedMultiplyAdd(qv, Vector.LoadUnsafe(ref gk), a0);
                            a1 = Vector.FusedMultiplyAdd(qv, Vector.LoadUnsafe(ref gk, 1), a1);
                            a2 = Vector.FusedMultiplyAdd(qv, Vector.LoadUnsafe(ref gk, 2), a2);
                            a3 = Vector.FusedMultiplyAdd(qv, Vector.LoadUnsafe(ref gk, 3), a3);
                        }
                        top = Vector.Max(top, Vector.Max(Vector.Max(a0, a1), Vector.Max(a2, a3)));
                    }
                    for (; dx < span; dx++)
                    {
                        Vector<float> a = default;
                        for (int k = 0; k < d; k++)
                            a = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref q, (nuint)(k * qs)), Vector.LoadUnsafe(ref g, (nuint)(k * gs + dx)), a);
                        top = Vector.Max(top, a);
                    }
                }
                top.CopyTo(lane);
                WriteBack(lane, best.Slice(y * w + x0, Math.Min(l, w - x0)));
            }
        }
    }

    private static void WriteBack(ReadOnlySpan<float> lane, Span<float> best)
    {
        for (int i = 0; i < best.Length; i++) if (lane[i] > best[i]) best[i] = lane[i];
    }

    /// <summary>
    /// The plain twin of <see cref="Accumulate"/>, on row-major patches: for every query patch and every
    /// offset of the window, one dot product (0 outside the grid).
    /// </summary>
    public static void AccumulateScalar(ReadOnlySpan<float> queryRows, ReadOnlySpan<float> referenceRows, int height, int width, int dim, int radius, Span<float> best)
    {
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                var q = queryRows.Slice((y * width + x) * dim, dim);
                ref float b = ref best[y * width + x];
                for (int dy = -radius; dy <= radius; dy++)
                {
                    for (int dx = -radius; dx <= radius; dx++)
                    {
                        int yy = y + dy, xx = x + dx;
                        float dot = 0;
                        if (yy >= 0 && yy < height && xx >= 0 && xx < width)
                        {
                            var r = referenceRows.Slice((yy * width + xx) * dim, dim);
                            for (int k = 0; k < dim; k++) dot += q[k] * r[k];
                        }
                        if (dot > b) b = dot;
                    }
                }
            }
        }
    }
}
