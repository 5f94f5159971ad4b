namespace EdgeInspector.Core.Numerics;

/// <summary>
/// A scored frame's view laid out as queries of the window search, in the bytes the grids use
/// (<see cref="WindowGrid"/>): [H][⌈D/4⌉][Stride][4] signed levels, Stride the width rounded up to 16
/// patches (the widest vector's lanes) with zeros past the width. One per thread, packed again for each view.
/// </summary>
public sealed class WindowQuery
{
    /// <summary>Patches per vector of the widest kernel (512-bit: 16 lanes of four bytes).</summary>
    public const int Lanes = 16;

    private sbyte[] _data = [];
    private int[] _zeroDot = [];

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

    /// <summary>Lays out <paramref name="rows"/> (height × width patches, row-major); the buffers grow once and are kept.</summary>
    public void Pack(ReadOnlySpan<float> rows, int height, int width, int dim)
    {
        if (rows.Length < height * width * dim) throw new ArgumentException($"{height}×{width} patches of {dim} need {height * width * dim} floats, got {rows.Length}.", nameof(rows));
        rows = rows[..(height * width * dim)];
        int blocks = WindowGrid.BlocksOf(dim), stride = (width + Lanes - 1) / Lanes * Lanes;
        int length = height * blocks * stride * WindowGrid.Group;
        if (_data.Length < length) _data = new sbyte[length];
        if (_zeroDot.Length < height * stride) _zeroDot = new int[height * stride];
        (Height, Width, Dim, Blocks, Stride) = (height, width, dim, blocks, stride);
        Step = WindowGrid.QueryStepOf(rows);
        float inverse = 1f / Step;
        _data.AsSpan(0, length).Clear();
        _zeroDot.AsSpan(0, height * stride).Clear();
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                var patch = rows.Slice((y * width + x) * dim, dim);
                int sum = 0;
                for (int k = 0; k < dim; k++)
                {
                    int level = WindowGrid.Level(patch[k], inverse);
                    _data[IndexOf(y, x, k)] = (sbyte)level;
                    sum += level;
                }
                _zeroDot[y * stride + x] = WindowGrid.Zero * sum;
            }
        }
    }

    internal int IndexOf(int y, int x, int k) => ((y * Blocks + k / WindowGrid.Group) * Stride + x) * WindowGrid.Group + k % WindowGrid.Group;
}
