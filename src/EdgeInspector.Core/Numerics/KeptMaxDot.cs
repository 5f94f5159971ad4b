using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace EdgeInspector.Core.Numerics;

/// <summary>
/// The subset search: each query patch's largest dot product with a reservoir frame's kept patches
/// (<see cref="KeptRows"/>), wherever in the frame they came from: what finds the nearest patch of a part
/// that moved. On the bytes of the window search (<see cref="WindowMaxDot"/>): integer sums, the same on every
/// path to the bit, each patch's maximum a dot product once, by the two steps.
/// </summary>
/// <remarks>
/// Loop order: sixteen query patches (two 256-bit vectors of the planar layout, <see cref="WindowQuery.RawFlat"/>)
/// against six kept rows at a time, each row's four features broadcast to every lane: twelve accumulators,
/// the two queries and the broadcast fill AVX's sixteen registers, and the kept rows of a frame (49 × 128
/// bytes at the defaults) stay in the first-level cache while the queries stream by. AVX2 takes four kept
/// rows at a time instead (<see cref="Four256Paired"/>): it adds two blocks in 16 bits before each widening,
/// and the second block's queries and row need the registers two more rows would take.
/// </remarks>
public static class KeptMaxDot
{
    private const int Rows = 6, Patches = 16;

    /// <summary>best[q] ← max(best[q], max over the kept rows of q·row), for every patch of <paramref name="query"/>.</summary>
    public static void Accumulate(WindowQuery query, KeptRows kept, Span<float> best) => Run(WindowMaxDot.Preferred, query, kept, best);

    /// <summary>The kernels this machine can run, by name, for the tests: each must match <see cref="AccumulateScalar"/> to the bit.</summary>
    internal static IReadOnlyList<string> Paths() => WindowMaxDot.Paths();

    /// <summary>Runs the kernel named by <see cref="Paths"/>.</summary>
    internal static void Run(string path, WindowQuery query, KeptRows kept, Span<float> best)
    {
        Validate(query, kept, best);
        switch (path)
        {
            case "vnni": Drive256<WindowMaxDot.VnniDot>(query, kept, best); break;
            case "avx2": Drive256<WindowMaxDot.Avx2Dot>(query, kept, best); break;
            case "dp": Drive128(query, kept, best); break;
            default: AccumulateScalar(query, kept, best); break;
        }
    }

    private static void Validate(WindowQuery query, KeptRows kept, Span<float> best)
    {
        if (query.Dim != kept.Dim) throw new ArgumentException($"The queries are {query.Dim} wide; the kept rows {kept.Dim}.", nameof(query));
        if (best.Length < query.Height * query.Width) throw new ArgumentException($"{best.Length} maxima for {query.Height * query.Width} patches.", nameof(best));
    }

    /// <summary>The plain twin of <see cref="Accumulate"/>: every patch against every kept row, one sum of byte products each, then the largest as a dot product.</summary>
    public static void AccumulateScalar(WindowQuery query, KeptRows kept, Span<float> best)
    {
        Validate(query, kept, best);
        int p = query.Height * query.Width, d = kept.Dim;
        ReadOnlySpan<int> zeroDot = query.FlatZeroDot;
        float scale = query.Step * kept.Step;
        for (int q = 0; q < p; q++)
        {
            int top = int.MinValue;
            for (int c = 0; c < kept.Count; c++)
            {
                int sum = 0;
                for (int k = 0; k < d; k++) sum += kept.Data[c * kept.RowBytes + k] * query.RawFlat[query.FlatIndexOf(q, k)];
                if (sum > top) top = sum;
            }
            float dot = (top - zeroDot[q]) * scale;
            if (dot > best[q]) best[q] = dot;
        }
    }

    /// <summary>Sixteen patches' largest sums into <paramref name="top"/>, then as dot products into <paramref name="best"/>.</summary>
    private static void Finish(ReadOnlySpan<int> top, WindowQuery query, KeptRows kept, int x0, Span<float> best)
    {
        int p = query.Height * query.Width;
        ReadOnlySpan<int> zeroDot = query.FlatZeroDot;
        float scale = query.Step * kept.Step;
        for (int j = 0; j < Patches && x0 + j < p; j++)
        {
            float dot = (top[j] - zeroDot[x0 + j]) * scale;
            if (dot > best[x0 + j]) best[x0 + j] = dot;
        }
    }

    // ---- 256-bit: AVX-VNNI, or AVX2's two-step multiply-add ----

    private static void Drive256<T>(WindowQuery query, KeptRows kept, Span<float> best) where T : struct, WindowMaxDot.IDot256
    {
        const int G = WindowGrid.Group;
        int blocks = kept.Blocks, qs = query.PatchStride * G, rb = kept.RowBytes, n = kept.Count;
        ref sbyte q0 = ref MemoryMarshal.GetArrayDataReference(query.RawFlat);
        ref byte k0 = ref MemoryMarshal.GetArrayDataReference(kept.Data);
        Span<int> top = stackalloc int[Patches];
        for (int x0 = 0; x0 < query.PatchStride; x0 += Patches)
        {
            ref sbyte q = ref Unsafe.Add(ref q0, x0 * G);
            var ma = Vector256.Create(int.MinValue);
            var mb = ma;
            int c = 0;
            if (typeof(T) == typeof(WindowMaxDot.Avx2Dot))
            {
                for (; c + 4 <= n; c += 4) Four256Paired(ref q, ref Unsafe.Add(ref k0, c * rb), blocks, qs, rb, ref ma, ref mb);
            }
            else
            {
                for (; c + Rows <= n; c += Rows) Six256<T>(ref q, ref Unsafe.Add(ref k0, c * rb), blocks, qs, rb, ref ma, ref mb);
            }
            for (; c < n; c++) One256<T>(ref q, ref Unsafe.Add(ref k0, c * rb), blocks, qs, ref ma, ref mb);
            ma.CopyTo(top);
            mb.CopyTo(top[8..]);
            Finish(top, query, kept, x0, best);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Broadcast(ref byte row) => Vector256.Create(Unsafe.ReadUnaligned<int>(ref row)).AsByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Six256<T>(ref sbyte q, ref byte k, int blocks, int qs, int rb, ref Vector256<int> ma, ref Vector256<int> mb) where T : struct, WindowMaxDot.IDot256
    {
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        Vector256<int> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default;
        for (int j = 0; j < blocks; j++)
        {
            var qa = Vector256.LoadUnsafe(ref q);
            var qb = Vector256.LoadUnsafe(ref q, 32);
            var r = Broadcast(ref k);
            a0 = T.Dot(a0, r, qa); b0 = T.Dot(b0, r, qb);
            r = Broadcast(ref Unsafe.Add(ref k, rb));
            a1 = T.Dot(a1, r, qa); b1 = T.Dot(b1, r, qb);
            r = Broadcast(ref Unsafe.Add(ref k, 2 * rb));
            a2 = T.Dot(a2, r, qa); b2 = T.Dot(b2, r, qb);
            r = Broadcast(ref Unsafe.Add(ref k, 3 * rb));
            a3 = T.Dot(a3, r, qa); b3 = T.Dot(b3, r, qb);
            r = Broadcast(ref Unsafe.Add(ref k, 4 * rb));
            a4 = T.Dot(a4, r, qa); b4 = T.Dot(b4, r, qb);
            r = Broadcast(ref Unsafe.Add(ref k, 5 * rb));
            a5 = T.Dot(a5, r, qa); b5 = T.Dot(b5, r, qb);
            q = ref Unsafe.Add(ref q, qs);
            k = ref Unsafe.Add(ref k, WindowGrid.Group);
        }
        ma = Vector256.Max(ma, Vector256.Max(Vector256.Max(Vector256.Max(a0, a1), Vector256.Max(a2, a3)), Vector256.Max(a4, a5)));
        mb = Vector256.Max(mb, Vector256.Max(Vector256.Max(Vector256.Max(b0, b1), Vector256.Max(b2, b3)), Vector256.Max(b4, b5)));
    }

    /// <summary>
    /// AVX2: four kept rows, two blocks at a time (<see cref="WindowMaxDot.IDot256.Dot2"/>: one widening per eight
    /// products). Eight accumulators, four query vectors and two rows fit AVX's sixteen registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Four256Paired(ref sbyte q, ref byte k, int blocks, int qs, int rb, ref Vector256<int> ma, ref Vector256<int> mb)
    {
        const int G = WindowGrid.Group;
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<int> b0 = default, b1 = default, b2 = default, b3 = default;
        int j = 0;
        for (; j + 2 <= blocks; j += 2)
        {
            var qa0 = Vector256.LoadUnsafe(ref q);
            var qb0 = Vector256.LoadUnsafe(ref q, 32);
            var qa1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref q, qs));
            var qb1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref q, qs), 32);
            var r = Broadcast(ref k);
            var s = Broadcast(ref Unsafe.Add(ref k, G));
            a0 = WindowMaxDot.Avx2Dot.Dot2(a0, r, qa0, s, qa1); b0 = WindowMaxDot.Avx2Dot.Dot2(b0, r, qb0, s, qb1);
            r = Broadcast(ref Unsafe.Add(ref k, rb)); s = Broadcast(ref Unsafe.Add(ref k, rb + G));
            a1 = WindowMaxDot.Avx2Dot.Dot2(a1, r, qa0, s, qa1); b1 = WindowMaxDot.Avx2Dot.Dot2(b1, r, qb0, s, qb1);
            r = Broadcast(ref Unsafe.Add(ref k, 2 * rb)); s = Broadcast(ref Unsafe.Add(ref k, 2 * rb + G));
            a2 = WindowMaxDot.Avx2Dot.Dot2(a2, r, qa0, s, qa1); b2 = WindowMaxDot.Avx2Dot.Dot2(b2, r, qb0, s, qb1);
            r = Broadcast(ref Unsafe.Add(ref k, 3 * rb)); s = Broadcast(ref Unsafe.Add(ref k, 3 * rb + G));
            a3 = WindowMaxDot.Avx2Dot.Dot2(a3, r, qa0, s, qa1); b3 = WindowMaxDot.Avx2Dot.Dot2(b3, r, qb0, s, qb1);
            q = ref Unsafe.Add(ref q, 2 * qs);
            k = ref Unsafe.Add(ref k, 2 * G);
        }
        for (; j < blocks; j++)
        {
            var qa = Vector256.LoadUnsafe(ref q);
            var qb = Vector256.LoadUnsafe(ref q, 32);
            var r = Broadcast(ref k);
            a0 = WindowMaxDot.Avx2Dot.Dot(a0, r, qa); b0 = WindowMaxDot.Avx2Dot.Dot(b0, r, qb);
            r = Broadcast(ref Unsafe.Add(ref k, rb));
            a1 = WindowMaxDot.Avx2Dot.Dot(a1, r, qa); b1 = WindowMaxDot.Avx2Dot.Dot(b1, r, qb);
            r = Broadcast(ref Unsafe.Add(ref k, 2 * rb));
            a2 = WindowMaxDot.Avx2Dot.Dot(a2, r, qa); b2 = WindowMaxDot.Avx2Dot.Dot(b2, r, qb);
            r = Broadcast(ref Unsafe.Add(ref k, 3 * rb));
            a3 = WindowMaxDot.Avx2Dot.Dot(a3, r, qa); b3 = WindowMaxDot.Avx2Dot.Dot(b3, r, qb);
            q = ref Unsafe.Add(ref q, qs);
            k = ref Unsafe.Add(ref k, G);
        }
        ma = Vector256.Max(ma, Vector256.Max(Vector256.Max(a0, a1), Vector256.Max(a2, a3)));
        mb = Vector256.Max(mb, Vector256.Max(Vector256.Max(b0, b1), Vector256.Max(b2, b3)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void One256<T>(ref sbyte q, ref byte k, int blocks, int qs, ref Vector256<int> ma, ref Vector256<int> mb) where T : struct, WindowMaxDot.IDot256
    {
        Vector256<int> a = default, b = default;
        for (int j = 0; j < blocks; j++)
        {
            var r = Broadcast(ref k);
            a = T.Dot(a, r, Vector256.LoadUnsafe(ref q));
            b = T.Dot(b, r, Vector256.LoadUnsafe(ref q, 32));
            q = ref Unsafe.Add(ref q, qs);
            k = ref Unsafe.Add(ref k, WindowGrid.Group);
        }
        ma = Vector256.Max(ma, a);
        mb = Vector256.Max(mb, b);
    }

    // ---- 128-bit Arm: sdot ----

    private static void Drive128(WindowQuery query, KeptRows kept, Span<float> best)
    {
        const int G = WindowGrid.Group;
        int blocks = kept.Blocks, qs = query.PatchStride * G, rb = kept.RowBytes;
        ref sbyte q0 = ref MemoryMarshal.GetArrayDataReference(query.RawFlat);
        // The kept bytes are 1…127, so signed bytes too: sdot gives the same sums.
        ref sbyte k0 = ref Unsafe.As<byte, sbyte>(ref MemoryMarshal.GetArrayDataReference(kept.Data));
        Span<int> top = stackalloc int[Patches];
        for (int x0 = 0; x0 < query.PatchStride; x0 += Patches)
        {
            var m0 = Vector128.Create(int.MinValue);
            var m1 = m0;
            var m2 = m0;
            var m3 = m0;
            for (int c = 0; c < kept.Count; c++)
            {
                ref sbyte q = ref Unsafe.Add(ref q0, x0 * G);
                ref sbyte k = ref Unsafe.Add(ref k0, c * rb);
                Vector128<int> s0 = default, s1 = default, s2 = default, s3 = default;
                for (int j = 0; j < blocks; j++)
                {
                    var r = Vector128.Create(Unsafe.ReadUnaligned<int>(ref Unsafe.As<sbyte, byte>(ref k))).AsSByte();
                    s0 = Dp.DotProduct(s0, Vector128.LoadUnsafe(ref q), r);
                    s1 = Dp.DotProduct(s1, Vector128.LoadUnsafe(ref q, 16), r);
                    s2 = Dp.DotProduct(s2, Vector128.LoadUnsafe(ref q, 32), r);
                    s3 = Dp.DotProduct(s3, Vector128.LoadUnsafe(ref q, 48), r);
                    q = ref Unsafe.Add(ref q, qs);
                    k = ref Unsafe.Add(ref k, G);
                }
                m0 = Vector128.Max(m0, s0);
                m1 = Vector128.Max(m1, s1);
                m2 = Vector128.Max(m2, s2);
                m3 = Vector128.Max(m3, s3);
            }
            m0.CopyTo(top);
            m1.CopyTo(top[4..]);
            m2.CopyTo(top[8..]);
            m3.CopyTo(top[12..]);
            Finish(top, query, kept, x0, best);
        }
    }
}
