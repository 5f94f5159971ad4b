using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace EdgeInspector.Core.Numerics;

/// <summary>
/// A frame's view laid out for the window search (<see cref="WindowMaxDot"/>), in bytes: row-planar,
/// [H][⌈D/4⌉][W + 2r][4], each grid row's feature planes one after the other, four features to a patch per
/// plane, r zero columns either side.
/// </summary>
/// <remarks>
/// <para>
/// Bytes because the search reads every grid of the reservoir once per scored frame, so its speed is the
/// memory's: at a byte per feature a reservoir frame is a quarter of its floats, and the dot-product
/// instructions (VNNI's <c>vpdpbusd</c>, AVX2's <c>vpmaddubsw</c>, Arm's <c>sdot</c>) take four byte
/// products into one 32-bit lane, which is why four features share a patch's place in a plane.
/// </para>
/// <para>
/// A value is a level of ±<see cref="Levels"/> steps of the grid's largest magnitude / 63, stored offset by
/// <see cref="Zero"/> (so 1…127). Offset, because the byte instructions multiply an unsigned byte by a signed
/// one; the search takes the offset back out once per query patch (<see cref="WindowQuery.ZeroDot"/>). 63
/// levels, because AVX2's <c>vpmaddubsw</c> adds two products in 16 bits with saturation: 2 · 127 · 63 fits,
/// 2 · 255 · 127 would not. Every path then computes the same integers.
/// </para>
/// <para>
/// Row-planar because the search takes, for one row of queries and one offset, the same row of references
/// shifted by the offset: one unaligned load per four features, and the rows a query row needs (2r + 1 of
/// them) sit together. The zero columns make a shifted load read 0 where the window leaves the grid sideways;
/// a row above or below the grid is not stored, the search counts it as 0. A load for a lane past the grid's
/// width may run into the next plane (<see cref="Slack"/> bytes end the buffer): those lanes are never written back.
/// </para>
/// </remarks>
public sealed class WindowGrid
{
    /// <summary>Features per patch in a plane: what one 32-bit lane of the byte dot instructions sums.</summary>
    public const int Group = 4;

    /// <summary>The largest level: values are −63…63 steps.</summary>
    public const int Levels = 63;

    /// <summary>The stored byte of a 0.</summary>
    public const byte Zero = 64;

    /// <summary>Bytes after the last plane that a vector load past the grid's width may read (16 patches).</summary>
    public const int Slack = 16 * Group;

    private WindowGrid(int height, int width, int dim, int radius, float step)
    {
        Height = height;
        Width = width;
        Dim = dim;
        Radius = radius;
        Stride = width + 2 * radius;
        Blocks = BlocksOf(dim);
        Step = step;
        Data = new byte[Length(height, width, dim, radius)];
    }

    /// <summary>Grid rows.</summary>
    public int Height { get; }

    /// <summary>Grid columns.</summary>
    public int Width { get; }

    /// <summary>Feature width.</summary>
    public int Dim { get; }

    /// <summary>r: the window is (2r + 1)² positions around a patch's own.</summary>
    public int Radius { get; }

    /// <summary>Patches from one plane of a row to the next: the width and the zero columns.</summary>
    public int Stride { get; }

    /// <summary>Planes per row: the features in groups of four (the last one padded with zeros).</summary>
    public int Blocks { get; }

    /// <summary>The value of one level.</summary>
    public float Step { get; }

    /// <summary>The planes ([H][Blocks][Stride][4], offset by <see cref="Zero"/>) and the slack.</summary>
    public byte[] Data { get; }

    /// <summary>Bytes held.</summary>
    public long AllocatedBytes => Data.Length;

    /// <summary>Bytes a grid of this shape holds.</summary>
    public static long BytesFor(int height, int width, int dim, int radius) => Length(height, width, dim, radius);

    internal static int BlocksOf(int dim) => (dim + Group - 1) / Group;

    private static int Length(int height, int width, int dim, int radius) =>
        height * BlocksOf(dim) * (width + 2 * radius) * Group + Slack;

    /// <summary>
    /// A grid's step: its largest magnitude / 63, rounded up to 18 significant bits (1 for all zeros). So
    /// 63 steps are exact in a float, and a grid packed again from its own values (<see cref="CopyRows"/>,
    /// a snapshot) gets the same step and the same bytes.
    /// </summary>
    internal static float StepOf(ReadOnlySpan<float> values)
    {
        float step = QueryStepOf(values);
        int bits = BitConverter.SingleToInt32Bits(step);
        return BitConverter.Int32BitsToSingle((bits + 0x3F) & ~0x3F);
    }

    /// <summary>A query's step: its largest magnitude / 63 (1 for all zeros). The score graph of the ONNX path computes the same.</summary>
    internal static float QueryStepOf(ReadOnlySpan<float> values)
    {
        float max = values.IsEmpty ? 0f : MathF.Abs(TensorPrimitives.MaxMagnitude(values));
        return max > 0f && float.IsFinite(max) ? max / Levels : 1f;
    }

    /// <summary>The level of <paramref name="value"/> at <paramref name="inverseStep"/> levels per unit, rounded to nearest (ties to even).</summary>
    internal static int Level(float value, float inverseStep) => Math.Clamp((int)MathF.Round(value * inverseStep), -Levels, Levels);

    /// <summary>
    /// The levels of one patch's <paramref name="values"/> at <paramref name="inverseStep"/> (<see cref="Level"/>'s,
    /// to the bit), written to <paramref name="levels"/> with zeros after them up to its length; returns their
    /// sum. Thirty-two at a time where the machine has 256-bit vectors, sixteen with 128-bit ones: packing the scored frame's views and
    /// each frame that enters the reservoir runs once per frame, a value at a time it took 0.26 and 0.35 ms
    /// per view, beside a search of the whole reservoir of a few ms.
    /// </summary>
    internal static int PatchLevels(ReadOnlySpan<float> values, float inverseStep, Span<sbyte> levels)
    {
        if (levels.Length < values.Length) throw new ArgumentException($"{values.Length} values need as many levels.", nameof(levels));
        int i = 0, sum = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= 32)
        {
            var inverse = Vector256.Create(inverseStep);
            var high = Vector256.Create((float)Levels);
            var low = Vector256.Create((float)-Levels);
            var total = Vector256<int>.Zero;
            ref float v0 = ref MemoryMarshal.GetReference(values);
            ref sbyte l0 = ref MemoryMarshal.GetReference(levels);
            for (; i + 32 <= values.Length; i += 32)
            {
                // Round to nearest, ties to even (as MathF.Round), clamped while still a float, then truncated.
                var a = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref v0, (nuint)i) * inverse), low), high));
                var b = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref v0, (nuint)(i + 8)) * inverse), low), high));
                var c = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref v0, (nuint)(i + 16)) * inverse), low), high));
                var d = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref v0, (nuint)(i + 24)) * inverse), low), high));
                total += a + b + c + d;
                Vector256.Narrow(Vector256.Narrow(a, b), Vector256.Narrow(c, d)).StoreUnsafe(ref l0, (nuint)i);
            }
            sum = Vector256.Sum(total);
        }
        else if (Vector128.IsHardwareAccelerated && values.Length >= 16)
        {
            // Arm's NEON (a Jetson): the same rule on 128-bit vectors, sixteen at a time.
            var inverse = Vector128.Create(inverseStep);
            var high = Vector128.Create((float)Levels);
            var low = Vector128.Create((float)-Levels);
            var total = Vector128<int>.Zero;
            ref float v0 = ref MemoryMarshal.GetReference(values);
            ref sbyte l0 = ref MemoryMarshal.GetReference(levels);
            for (; i + 16 <= values.Length; i += 16)
            {
                var a = Vector128.ConvertToInt32(Vector128.Min(Vector128.Max(Vector128.Round(Vector128.LoadUnsafe(ref v0, (nuint)i) * inverse), low), high));
                var b = Vector128.ConvertToInt32(Vector128.Min(Vector128.Max(Vector128.Round(Vector128.LoadUnsafe(ref v0, (nuint)(i + 4)) * inverse), low), high));
                var c = Vector128.ConvertToInt32(Vector128.Min(Vector128.Max(Vector128.Round(Vector128.LoadUnsafe(ref v0, (nuint)(i + 8)) * inverse), low), high));
                var d = Vector128.ConvertToInt32(Vector128.Min(Vector128.Max(Vector128.Round(Vector128.LoadUnsafe(ref v0, (nuint)(i + 12)) * inverse), low), high));
                total += a + b + c + d;
                Vector128.Narrow(Vector128.Narrow(a, b), Vector128.Narrow(c, d)).StoreUnsafe(ref l0, (nuint)i);
            }
            sum = Vector128.Sum(total);
        }
        for (; i < values.Length; i++)
        {
            int level = Level(values[i], inverseStep);
            levels[i] = (sbyte)level;
            sum += level;
        }
        levels[values.Length..].Clear();
        return sum;
    }

    /// <summary>
    /// One patch's <paramref name="values"/> as a grid stores them: <see cref="PatchLevels"/> offset by
    /// <see cref="Zero"/> (a level's two's complement byte + 64 wraps to 1…127), <see cref="Zero"/> after them
    /// up to <paramref name="stored"/>'s length. What <see cref="Pack"/> and <see cref="KeptRows.Pack"/> write.
    /// </summary>
    internal static void StoredLevels(ReadOnlySpan<float> values, float inverseStep, Span<byte> stored)
    {
        PatchLevels(values, inverseStep, MemoryMarshal.Cast<byte, sbyte>(stored));
        var offset = Vector128.Create(Zero);
        int k = 0;
        for (; k + 16 <= stored.Length; k += 16) (Vector128.Create(stored.Slice(k, 16)) + offset).CopyTo(stored.Slice(k, 16));
        for (; k < stored.Length; k++) stored[k] = (byte)(stored[k] + Zero);
    }

    /// <summary>
    /// The levels a grid of <paramref name="rows"/> holds (−63…63, its bytes without the offset), and its step:
    /// what a snapshot stores of a whole frame. <see cref="FromLevels"/> gives the values back.
    /// </summary>
    public static float ToLevels(ReadOnlySpan<float> rows, Span<sbyte> levels)
    {
        if (levels.Length < rows.Length) throw new ArgumentException($"{rows.Length} values need as many levels.", nameof(levels));
        float step = StepOf(rows);
        PatchLevels(rows, 1f / step, levels[..rows.Length]);
        return step;
    }

    /// <summary>The values of <paramref name="levels"/> at <paramref name="step"/>, as <see cref="CopyRows"/> gives a grid's.</summary>
    public static void FromLevels(ReadOnlySpan<sbyte> levels, float step, Span<float> rows)
    {
        if (rows.Length < levels.Length) throw new ArgumentException($"{levels.Length} levels need as many values.", nameof(rows));
        for (int i = 0; i < levels.Length; i++) rows[i] = levels[i] * step;
    }

    /// <summary>
    /// <paramref name="rows"/> as a grid of them holds them: each value its level × the grid's step. What the
    /// ONNX path's reservoir keeps in float, so that both paths search the same values.
    /// </summary>
    public static void Quantise(ReadOnlySpan<float> rows, Span<float> into)
    {
        if (into.Length < rows.Length) throw new ArgumentException($"{rows.Length} floats need as many to go into.", nameof(into));
        float step = StepOf(rows), inverse = 1f / step;
        for (int i = 0; i < rows.Length; i++) into[i] = Level(rows[i], inverse) * step;
    }

    /// <summary>Lays out <paramref name="rows"/> (height × width patches, row-major, <paramref name="dim"/> floats each).</summary>
    public static WindowGrid Pack(ReadOnlySpan<float> rows, int height, int width, int dim, int radius)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(radius);
        if (rows.Length < height * width * dim) throw new ArgumentException($"{height}×{width} patches of {dim} need {height * width * dim} floats, got {rows.Length}.", nameof(rows));
        rows = rows[..(height * width * dim)];
        var g = new WindowGrid(height, width, dim, radius, StepOf(rows));
        float inverse = 1f / g.Step;
        g.Data.AsSpan().Fill(Zero);
        Span<byte> stored = g.Blocks <= 256 ? stackalloc byte[g.Blocks * Group] : new byte[g.Blocks * Group];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                // The patch as stored, then four features to a plane.
                StoredLevels(rows.Slice((y * width + x) * dim, dim), inverse, stored);
                ref byte plane = ref g.Data[g.IndexOf(y, x + radius, 0)];
                for (int b = 0; b < g.Blocks; b++)
                    Unsafe.WriteUnaligned(ref Unsafe.Add(ref plane, b * g.Stride * Group), MemoryMarshal.Read<int>(stored.Slice(b * Group, Group)));
            }
        }
        return g;
    }

    /// <summary>Where feature <paramref name="k"/> of the patch in stored column <paramref name="column"/> (the zero columns counted) of row <paramref name="y"/> is.</summary>
    internal int IndexOf(int y, int column, int k) => ((y * Blocks + k / Group) * Stride + column) * Group + k % Group;

    /// <summary>
    /// The patches' levels (−63…63; a value is its level × <see cref="Step"/>), row-major (height × width × dim):
    /// what a snapshot stores of a whole frame, read without unpacking it into floats.
    /// </summary>
    public void CopyLevels(Span<sbyte> levels)
    {
        if (levels.Length < Height * Width * Dim) throw new ArgumentException($"{Height * Width * Dim} levels needed.", nameof(levels));
        for (int y = 0; y < Height; y++)
        {
            for (int x = 0; x < Width; x++)
            {
                var patch = levels.Slice((y * Width + x) * Dim, Dim);
                for (int k = 0; k < Dim; k++) patch[k] = (sbyte)(Data[IndexOf(y, x + Radius, k)] - Zero);
            }
        }
    }

    /// <summary>The patches back as the search sees them (each value its level × <see cref="Step"/>), row-major (height × width × dim floats).</summary>
    public void CopyRows(Span<float> rows)
    {
        if (rows.Length < Height * Width * Dim) throw new ArgumentException($"{Height * Width * Dim} floats needed.", nameof(rows));
        for (int y = 0; y < Height; y++)
        {
            for (int x = 0; x < Width; x++)
            {
                var patch = rows.Slice((y * Width + x) * Dim, Dim);
                for (int k = 0; k < Dim; k++) patch[k] = (Data[IndexOf(y, x + Radius, k)] - Zero) * Step;
            }
        }
    }
}
