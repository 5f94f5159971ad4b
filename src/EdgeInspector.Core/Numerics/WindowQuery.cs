using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EdgeInspector.Core.Numerics;

/// <summary>
/// A scored frame's view as the queries of both searches, in the bytes the grids use (<see cref="WindowGrid"/>):
/// for the window search row-planar, [H][⌈D/4⌉][Stride][4] signed levels, Stride the width rounded up to 16
/// patches (the widest vector's lanes) with zeros past the width; for the subset search (<see cref="KeptMaxDot"/>)
/// the same levels planar over the whole frame, [⌈D/4⌉][<see cref="PatchStride"/>][4]. One per thread, packed
/// again for each view.
/// </summary>
public sealed class WindowQuery
{
    /// <summary>Patches per vector of the widest kernel (512-bit: 16 lanes of four bytes).</summary>
    public const int Lanes = 16;

    private sbyte[] _data = [];
    private int[] _zeroDot = [];
    private sbyte[] _flat = [];
    private int[] _flatZeroDot = [];

    /// <summary>Grid rows.</summary>
    public int Height { get; private set; }

    /// <summary>Grid columns.</summary>
    public int Width { get; private set; }

    /// <summary>Feature width.</summary>
    public int Dim { get; private set; }

    /// <summary>Planes per row.</summary>
    public int Blocks { get; private set; }

    /// <summary>Patches from one plane of a row to the next.</summary>
    public int Stride { get; private set; }

    /// <summary>The value of one level.</summary>
    public float Step { get; private set; }

    /// <summary>The planes: levels −63…63.</summary>
    public ReadOnlySpan<sbyte> Data => _data.AsSpan(0, Height * Blocks * Stride * WindowGrid.Group);

    /// <summary>
    /// Per patch ([H][Stride]), what the search's sum comes to against a reference of zeros: the grid's bytes
    /// are offset by <see cref="WindowGrid.Zero"/>, so Σ (level + 64) · q = dot + 64 · Σ q, and this is 64 · Σ q.
    /// </summary>
    public ReadOnlySpan<int> ZeroDot => _zeroDot.AsSpan(0, Height * Stride);

    internal sbyte[] RawData => _data;

    internal int[] RawZeroDot => _zeroDot;

    /// <summary>Patches from one plane of the planar layout to the next: H·W rounded up to 16.</summary>
    public int PatchStride { get; private set; }

    /// <summary>The planar layout: [Blocks][PatchStride][4] levels, patch q = y·W + x, zeros past H·W.</summary>
    internal sbyte[] RawFlat => _flat;

    /// <summary><see cref="ZeroDot"/> by patch (y·W + x) for the planar layout.</summary>
    internal ReadOnlySpan<int> FlatZeroDot => _flatZeroDot.AsSpan(0, PatchStride);

    /// <summary>Lays out <paramref name="rows"/> (height × width patches, row-major); the buffers grow once and are kept.</summary>
    public void Pack(ReadOnlySpan<float> rows, int height, int width, int dim)
    {
        if (rows.Length < height * width * dim) throw new ArgumentException($"{height}×{width} patches of {dim} need {height * width * dim} floats, got {rows.Length}.", nameof(rows));
        rows = rows[..(height * width * dim)];
        int blocks = WindowGrid.BlocksOf(dim), stride = (width + Lanes - 1) / Lanes * Lanes;
        int length = height * blocks * stride * WindowGrid.Group;
        if (_data.Length < length) _data = new sbyte[length];
        if (_zeroDot.Length < height * stride) _zeroDot = new int[height * stride];
        int patchStride = (height * width + Lanes - 1) / Lanes * Lanes, flat = blocks * patchStride * WindowGrid.Group;
        if (_flat.Length < flat) _flat = new sbyte[flat];
        if (_flatZeroDot.Length < patchStride) _flatZeroDot = new int[patchStride];
        (Height, Width, Dim, Blocks, Stride, PatchStride) = (height, width, dim, blocks, stride, patchStride);
        Step = WindowGrid.QueryStepOf(rows);
        float inverse = 1f / Step;
        _data.AsSpan(0, length).Clear();
        _zeroDot.AsSpan(0, height * stride).Clear();
        _flat.AsSpan(0, flat).Clear();
        _flatZeroDot.AsSpan(0, patchStride).Clear();
        Span<sbyte> levels = blocks <= 256 ? stackalloc sbyte[blocks * WindowGrid.Group] : new sbyte[blocks * WindowGrid.Group];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int q = y * width + x;
                int sum = WindowGrid.PatchLevels(rows.Slice(q * dim, dim), inverse, levels);
                // Four features to a plane, in both layouts.
                ref byte row = ref Unsafe.As<sbyte, byte>(ref _data[IndexOf(y, x, 0)]);
                ref byte flatRow = ref Unsafe.As<sbyte, byte>(ref _flat[FlatIndexOf(q, 0)]);
                ref int words = ref Unsafe.As<sbyte, int>(ref MemoryMarshal.GetReference(levels));
                for (int b = 0; b < blocks; b++)
                {
                    int word = Unsafe.Add(ref words, b);
                    Unsafe.WriteUnaligned(ref Unsafe.Add(ref row, b * stride * WindowGrid.Group), word);
                    Unsafe.WriteUnaligned(ref Unsafe.Add(ref flatRow, b * patchStride * WindowGrid.Group), word);
                }
                _zeroDot[y * stride + x] = WindowGrid.Zero * sum;
                _flatZeroDot[q] = WindowGrid.Zero * sum;
            }
        }
    }

    internal int FlatIndexOf(int q, int k) => ((k / WindowGrid.Group) * PatchStride + q) * WindowGrid.Group + k % WindowGrid.Group;

    internal int IndexOf(int y, int x, int k) => ((y * Blocks + k / WindowGrid.Group) * Stride + x) * WindowGrid.Group + k % WindowGrid.Group;
}
