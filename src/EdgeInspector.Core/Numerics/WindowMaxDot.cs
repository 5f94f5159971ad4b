using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace EdgeInspector.Core.Numerics;

/// <summary>
/// The window search: each query patch's largest dot product with the reference frame's patches within
/// (2r + 1)² positions of its own (an offset that leaves the grid counts as a dot of 0: two unit vectors
/// at right angles). On a part that sits in place its nearest patch in another frame is near the same
/// position, so this finds what a search of the whole frame would, at (2r + 1)² / P of its work.
/// </summary>
/// <remarks>
/// <para>
/// On bytes (<see cref="WindowGrid"/>, <see cref="WindowQuery"/>): the sums are integers, the same on every
/// path to the bit, and each patch's maximum becomes a dot product once, by the two steps. Against the
/// float dot products the levels are off by at most half a step each: on the default views (unit rows of
/// 128, largest magnitude about 0.44) a step is about 0.007, and over 33 runs of the shared lots image and
/// pixel AUROC moved by at most 0.6 and 0.9 points, 0.03 and 0.07 on average (decision 0012).
/// </para>
/// <para>
/// Loop order: a pair of query rows against one reference row at five column offsets, so each shifted
/// reference load serves two rows and each query load five offsets. Per vector lane, four features.
/// </para>
/// </remarks>
public static class WindowMaxDot
{
    /// <summary>
    /// best[q] ← max(best[q], max over the window of q of q·r), for <paramref name="query"/> against
    /// <paramref name="grid"/> (the same height, width and dim).
    /// </summary>
    public static void Accumulate(WindowQuery query, WindowGrid grid, Span<float> best) => Run(Preferred, query, grid, best);

    /// <summary>The kernel the byte searches run on this machine (here and in <see cref="KeptMaxDot"/>): the first of <see cref="Paths"/>.</summary>
    internal static readonly string Preferred = Paths()[0];

    /// <summary>The kernels this machine can run, fastest first, by name: each must match <see cref="AccumulateScalar"/> to the bit.</summary>
    internal static IReadOnlyList<string> Paths()
    {
        var paths = new List<string>();
        if (AvxVnni.IsSupported) paths.Add("vnni");
        if (Avx2.IsSupported) paths.Add("avx2");
        if (Dp.IsSupported) paths.Add("dp");
        paths.Add("scalar");
        return paths;
    }

    /// <summary>Runs the kernel named by <see cref="Paths"/>.</summary>
    internal static void Run(string path, WindowQuery query, WindowGrid grid, Span<float> best)
    {
        Validate(query, grid, best);
        switch (path)
        {
            case "vnni": Drive<Pair256<VnniDot>>(query, grid, best); break;
            case "avx2": Drive<Pair256<Avx2Dot>>(query, grid, best); break;
            case "dp": Drive<Pair128>(query, grid, best); break;
            default: AccumulateScalar(query, grid, best); break;
        }
    }

    private static void Validate(WindowQuery query, WindowGrid grid, Span<float> best)
    {
        if (query.Height != grid.Height || query.Width != grid.Width || query.Dim != grid.Dim)
            throw new ArgumentException($"The queries are a {query.Height}×{query.Width} grid of {query.Dim}; the reference is a {grid.Height}×{grid.Width} grid of {grid.Dim}.", nameof(query));
        if (best.Length < grid.Height * grid.Width) throw new ArgumentException($"{best.Length} maxima for {grid.Height * grid.Width} patches.", nameof(best));
    }

    /// <summary>
    /// The plain twin of <see cref="Accumulate"/>: for every query patch and every offset of the window, one
    /// sum of byte products (a dot of 0 outside the grid), then the largest as a dot product.
    /// </summary>
    public static void AccumulateScalar(WindowQuery query, WindowGrid grid, Span<float> best)
    {
        Validate(query, grid, best);
        int h = grid.Height, w = grid.Width, d = grid.Dim, r = grid.Radius;
        ReadOnlySpan<sbyte> q = query.Data;
        ReadOnlySpan<int> zeroDot = query.ZeroDot;
        float scale = query.Step * grid.Step;
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int zero = zeroDot[y * query.Stride + x], top = int.MinValue;
                for (int dy = -r; dy <= r; dy++)
                {
                    for (int dx = -r; dx <= r; dx++)
                    {
                        int yy = y + dy, xx = x + dx, sum = zero;
                        if (yy >= 0 && yy < h && xx >= 0 && xx < w)
                        {
                            sum = 0;
                            for (int k = 0; k < d; k++) sum += grid.Data[grid.IndexOf(yy, xx + r, k)] * q[query.IndexOf(y, x, k)];
                        }
                        if (sum > top) top = sum;
                    }
                }
                float dot = (top - zero) * scale;
                if (dot > best[y * w + x]) best[y * w + x] = dot;
            }
        }
    }

    /// <summary>
    /// The driver of the vector kernels: each query patch's largest sum gathers in a scratch grid ([H][Stride],
    /// on the stack for the usual grids) and becomes a dot product at the end. A query row whose window reaches
    /// above or below the grid starts at its dot of 0.
    /// </summary>
    private static void Drive<TPair>(WindowQuery query, WindowGrid grid, Span<float> best) where TPair : struct, IRowPair
    {
        int h = grid.Height, w = grid.Width, r = grid.Radius, qs = query.Stride;
        int cells = h * qs;
        int[]? rented = cells > 2048 ? ArrayPool<int>.Shared.Rent(cells) : null;
        Span<int> top = rented is null ? stackalloc int[cells] : rented.AsSpan(0, cells);
        ReadOnlySpan<int> zeroDot = query.ZeroDot;
        try
        {
            for (int y = 0; y < h; y++)
            {
                if (y < r || y + r >= h) zeroDot.Slice(y * qs, qs).CopyTo(top.Slice(y * qs, qs));
                else top.Slice(y * qs, qs).Fill(int.MinValue);
            }
            ref sbyte q0 = ref MemoryMarshal.GetArrayDataReference(query.RawData);
            ref byte g0 = ref MemoryMarshal.GetArrayDataReference(grid.Data);
            ref int t0 = ref MemoryMarshal.GetReference(top);
            for (int y = 0; y < h; y += 2)
            {
                bool second = y + 1 < h;
                int last = Math.Min(h - 1, (second ? y + 1 : y) + r);
                for (int gy = Math.Max(0, y - r); gy <= last; gy++)
                {
                    bool a = Math.Abs(gy - y) <= r, b = second && Math.Abs(gy - y - 1) <= r;
                    TPair.Run(ref q0, ref g0, ref t0, query, grid, y, gy, a, b);
                }
            }
            float scale = query.Step * grid.Step;
            for (int y = 0; y < h; y++)
            {
                for (int x = 0; x < w; x++)
                {
                    float dot = (top[y * qs + x] - zeroDot[y * qs + x]) * scale;
                    if (dot > best[y * w + x]) best[y * w + x] = dot;
                }
            }
        }
        finally
        {
            if (rented is not null) ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>A kernel: query rows y (when a) and y + 1 (when b) against reference row gy, every offset, into the scratch maxima.</summary>
    private interface IRowPair
    {
        static abstract void Run(ref sbyte q0, ref byte g0, ref int t0, WindowQuery query, WindowGrid grid, int y, int gy, bool a, bool b);
    }

    // ---- 256-bit: AVX-VNNI, or AVX2's two-step multiply-add ----

    /// <summary>acc + Σ over each lane's four byte products (reference bytes unsigned, query bytes signed).</summary>
    internal interface IDot256
    {
        static abstract Vector256<int> Dot(Vector256<int> acc, Vector256<byte> g, Vector256<sbyte> q);

        /// <summary>Two blocks: acc + Σ over each lane's eight byte products.</summary>
        static abstract Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> g0, Vector256<sbyte> q0, Vector256<byte> g1, Vector256<sbyte> q1);
    }

    internal readonly struct VnniDot : IDot256
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> g, Vector256<sbyte> q) => AvxVnni.MultiplyWideningAndAdd(acc, g, q);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> g0, Vector256<sbyte> q0, Vector256<byte> g1, Vector256<sbyte> q1) =>
            AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(acc, g0, q0), g1, q1);
    }

    internal readonly struct Avx2Dot : IDot256
    {
        // vpmaddubsw adds two products in 16 bits with saturation; 2 · 127 · 63 fits (WindowGrid.Levels).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> g, Vector256<sbyte> q) =>
            Avx2.Add(acc, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(g, q), Vector256<short>.One));

        // Four products in 16 bits: 4 · 127 · 63 = 32,004 still fits, so two blocks share one widening.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot2(Vector256<int> acc, Vector256<byte> g0, Vector256<sbyte> q0, Vector256<byte> g1, Vector256<sbyte> q1) =>
            Avx2.Add(acc, Avx2.MultiplyAddAdjacent(Avx2.Add(Avx2.MultiplyAddAdjacent(g0, q0), Avx2.MultiplyAddAdjacent(g1, q1)), Vector256<short>.One));
    }

    private readonly struct Pair256<T> : IRowPair where T : struct, IDot256
    {
        public static void Run(ref sbyte q0, ref byte g0, ref int t0, WindowQuery query, WindowGrid grid, int y, int gy, bool a, bool b)
        {
            const int L = 8, G = WindowGrid.Group;
            int blocks = grid.Blocks, gs = grid.Stride * G, qs = query.Stride * G, span = 2 * grid.Radius + 1;
            bool both = a && b;
            // With one row only, it is row a's place that holds it, whichever it is.
            int ya = a ? y : y + 1;
            ref byte gRow = ref Unsafe.Add(ref g0, gy * blocks * gs);
            ref sbyte qa = ref Unsafe.Add(ref q0, ya * blocks * qs);
            ref sbyte qb = ref Unsafe.Add(ref q0, (both ? y + 1 : ya) * blocks * qs);
            ref int ta = ref Unsafe.Add(ref t0, ya * query.Stride);
            ref int tb = ref Unsafe.Add(ref t0, (both ? y + 1 : ya) * query.Stride);
            for (int x0 = 0; x0 < query.Stride; x0 += L)
            {
                var ma = Vector256.Create(int.MinValue);
                var mb = ma;
                for (int dx = 0; dx < span; dx += 5)
                {
                    ref byte g = ref Unsafe.Add(ref gRow, (x0 + dx) * G);
                    if (span - dx >= 5)
                    {
                        if (both) Five256x2<T>(ref Unsafe.Add(ref qa, x0 * G), ref Unsafe.Add(ref qb, x0 * G), ref g, blocks, qs, gs, ref ma, ref mb);
                        else Five256<T>(ref Unsafe.Add(ref qa, x0 * G), ref g, blocks, qs, gs, ref ma);
                    }
                    else
                    {
                        for (int o = 0; o < span - dx; o++)
                        {
                            ma = Vector256.Max(ma, One256<T>(ref Unsafe.Add(ref qa, x0 * G), ref Unsafe.Add(ref g, o * G), blocks, qs, gs));
                            if (both) mb = Vector256.Max(mb, One256<T>(ref Unsafe.Add(ref qb, x0 * G), ref Unsafe.Add(ref g, o * G), blocks, qs, gs));
                        }
                    }
                }
                Vector256.Max(Vector256.LoadUnsafe(ref ta, (nuint)x0), ma).StoreUnsafe(ref ta, (nuint)x0);
                if (both) Vector256.Max(Vector256.LoadUnsafe(ref tb, (nuint)x0), mb).StoreUnsafe(ref tb, (nuint)x0);
            }
        }
    }

    /// <summary>
    /// Two query rows against five consecutive offsets: ten accumulators. Two blocks at a time (<see cref="IDot256.Dot2"/>),
    /// so that AVX2 widens once per eight products instead of four (1.10× on AVX2, the same on AVX-VNNI). The
    /// subset kernel does the same on AVX2 with four kept rows instead of six (KeptMaxDot.Four256Paired):
    /// with twelve accumulators there are no registers left for it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Five256x2<T>(ref sbyte qa, ref sbyte qb, ref byte g, int blocks, int qs, int gs, ref Vector256<int> ma, ref Vector256<int> mb) where T : struct, IDot256
    {
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default;
        Vector256<int> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default;
        int k = 0;
        for (; k + 2 <= blocks; k += 2)
        {
            var qa0 = Vector256.LoadUnsafe(ref qa);
            var qa1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref qa, qs));
            var qb0 = Vector256.LoadUnsafe(ref qb);
            var qb1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref qb, qs));
            ref byte h = ref Unsafe.Add(ref g, gs);
            var g0 = Vector256.LoadUnsafe(ref g); var h0 = Vector256.LoadUnsafe(ref h);
            a0 = T.Dot2(a0, g0, qa0, h0, qa1); b0 = T.Dot2(b0, g0, qb0, h0, qb1);
            g0 = Vector256.LoadUnsafe(ref g, 4); h0 = Vector256.LoadUnsafe(ref h, 4);
            a1 = T.Dot2(a1, g0, qa0, h0, qa1); b1 = T.Dot2(b1, g0, qb0, h0, qb1);
            g0 = Vector256.LoadUnsafe(ref g, 8); h0 = Vector256.LoadUnsafe(ref h, 8);
            a2 = T.Dot2(a2, g0, qa0, h0, qa1); b2 = T.Dot2(b2, g0, qb0, h0, qb1);
            g0 = Vector256.LoadUnsafe(ref g, 12); h0 = Vector256.LoadUnsafe(ref h, 12);
            a3 = T.Dot2(a3, g0, qa0, h0, qa1); b3 = T.Dot2(b3, g0, qb0, h0, qb1);
            g0 = Vector256.LoadUnsafe(ref g, 16); h0 = Vector256.LoadUnsafe(ref h, 16);
            a4 = T.Dot2(a4, g0, qa0, h0, qa1); b4 = T.Dot2(b4, g0, qb0, h0, qb1);
            g = ref Unsafe.Add(ref g, 2 * gs);
            qa = ref Unsafe.Add(ref qa, 2 * qs);
            qb = ref Unsafe.Add(ref qb, 2 * qs);
        }
        for (; k < blocks; k++)
        {
            var g0 = Vector256.LoadUnsafe(ref g);
            var g1 = Vector256.LoadUnsafe(ref g, 4);
            var g2 = Vector256.LoadUnsafe(ref g, 8);
            var g3 = Vector256.LoadUnsafe(ref g, 12);
            var g4 = Vector256.LoadUnsafe(ref g, 16);
            var q = Vector256.LoadUnsafe(ref qa);
            a0 = T.Dot(a0, g0, q); a1 = T.Dot(a1, g1, q); a2 = T.Dot(a2, g2, q); a3 = T.Dot(a3, g3, q); a4 = T.Dot(a4, g4, q);
            q = Vector256.LoadUnsafe(ref qb);
            b0 = T.Dot(b0, g0, q); b1 = T.Dot(b1, g1, q); b2 = T.Dot(b2, g2, q); b3 = T.Dot(b3, g3, q); b4 = T.Dot(b4, g4, q);
            g = ref Unsafe.Add(ref g, gs);
            qa = ref Unsafe.Add(ref qa, qs);
            qb = ref Unsafe.Add(ref qb, qs);
        }
        ma = Vector256.Max(ma, Vector256.Max(Vector256.Max(Vector256.Max(a0, a1), Vector256.Max(a2, a3)), a4));
        mb = Vector256.Max(mb, Vector256.Max(Vector256.Max(Vector256.Max(b0, b1), Vector256.Max(b2, b3)), b4));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Five256<T>(ref sbyte qa, ref byte g, int blocks, int qs, int gs, ref Vector256<int> ma) where T : struct, IDot256
    {
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default;
        for (int k = 0; k < blocks; k++)
        {
            var q = Vector256.LoadUnsafe(ref qa);
            a0 = T.Dot(a0, Vector256.LoadUnsafe(ref g), q);
            a1 = T.Dot(a1, Vector256.LoadUnsafe(ref g, 4), q);
            a2 = T.Dot(a2, Vector256.LoadUnsafe(ref g, 8), q);
            a3 = T.Dot(a3, Vector256.LoadUnsafe(ref g, 12), q);
            a4 = T.Dot(a4, Vector256.LoadUnsafe(ref g, 16), q);
            g = ref Unsafe.Add(ref g, gs);
            qa = ref Unsafe.Add(ref qa, qs);
        }
        ma = Vector256.Max(ma, Vector256.Max(Vector256.Max(Vector256.Max(a0, a1), Vector256.Max(a2, a3)), a4));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> One256<T>(ref sbyte qa, ref byte g, int blocks, int qs, int gs) where T : struct, IDot256
    {
        Vector256<int> a = default;
        for (int k = 0; k < blocks; k++)
        {
            a = T.Dot(a, Vector256.LoadUnsafe(ref g), Vector256.LoadUnsafe(ref qa));
            g = ref Unsafe.Add(ref g, gs);
            qa = ref Unsafe.Add(ref qa, qs);
        }
        return a;
    }

    // ---- 128-bit Arm: sdot ----

    private readonly struct Pair128 : IRowPair
    {
        public static void Run(ref sbyte q0, ref byte g0, ref int t0, WindowQuery query, WindowGrid grid, int y, int gy, bool a, bool b)
        {
            const int L = 4, G = WindowGrid.Group;
            int blocks = grid.Blocks, gs = grid.Stride * G, qs = query.Stride * G, span = 2 * grid.Radius + 1;
            ref byte gRow = ref Unsafe.Add(ref g0, gy * blocks * gs);
            for (int row = 0; row < 2; row++)
            {
                if (row == 0 ? !a : !b) continue;
                ref sbyte qr = ref Unsafe.Add(ref q0, (y + row) * blocks * qs);
                ref int tr = ref Unsafe.Add(ref t0, (y + row) * query.Stride);
                for (int x0 = 0; x0 < query.Stride; x0 += L)
                {
                    var m = Vector128.Create(int.MinValue);
                    for (int dx = 0; dx < span; dx++)
                    {
                        // The reference bytes are 1…127, so signed bytes too: sdot gives the same sums.
                        ref sbyte pg = ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref gRow, (x0 + dx) * G));
                        ref sbyte pq = ref Unsafe.Add(ref qr, x0 * G);
                        Vector128<int> sum = default;
                        for (int k = 0; k < blocks; k++)
                        {
                            sum = Dp.DotProduct(sum, Vector128.LoadUnsafe(ref pg), Vector128.LoadUnsafe(ref pq));
                            pg = ref Unsafe.Add(ref pg, gs);
                            pq = ref Unsafe.Add(ref pq, qs);
                        }
                        m = Vector128.Max(m, sum);
                    }
                    Vector128.Max(Vector128.LoadUnsafe(ref tr, (nuint)x0), m).StoreUnsafe(ref tr, (nuint)x0);
                }
            }
        }
    }
}
