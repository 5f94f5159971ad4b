namespace EdgeInspector.Core.Numerics;

/// <summary>
/// A frame's view laid out for the window search (<see cref="WindowMaxDot"/>): row-planar,
/// [H][D][W + 2r], each grid row's D feature planes one after the other, r zero columns either side.
/// </summary>
/// <remarks>
/// Row-planar because the search takes, for one row of queries and one offset, the same row of references
/// shifted by the offset: for every feature that is one unaligned vector load, and the rows a query row
/// needs (2r + 1 of them) sit together in memory. The zero columns make a shifted load read 0 where the
/// window leaves the grid sideways; a row above or below the grid is not stored, the search counts it as
/// 0. A load for a lane past the grid's width may run into the next plane (a few floats of slack end
/// the buffer): those lanes are never written back. The search reads every grid of the reservoir once per
/// frame, so its speed is the memory's, and the layout holds no more than it must.
/// </remarks>
public sealed class WindowGrid
{
    private WindowGrid(int height, int width, int dim, int radius)
    {
        Height = height;
        Width = width;
        Dim = dim;
        Radius = radius;
        Stride = width + 2 * radius;
        Data = new float[Length(height, width, dim, radius)];
    }

    /// <summary>Grid rows.</summary>
    public int Height { get; }

    /// <summary>Grid columns.</summary>
    public int Width { get; }

    /// <summary>Feature width.</summary>
    public int Dim { get; }

    /// <summary>r: the window is (2r + 1)² positions around a patch's own.</summary>
    public int Radius { get; }

    /// <summary>Floats from one feature plane of a row to the next.</summary>
    public int Stride { get; }

    /// <summary>The planes ([H][D][Stride]) and the slack.</summary>
    public float[] Data { get; }

    /// <summary>Bytes held.</summary>
    public long AllocatedBytes => 4L * Data.Length;

    /// <summary>Bytes a grid of this shape holds.</summary>
    public static long BytesFor(int height, int width, int dim, int radius) => 4L * Length(height, width, dim, radius);

    private static int Length(int height, int width, int dim, int radius) =>
        height * dim * (width + 2 * radius) + WindowMaxDot.QueryStride(width) - width;

    /// <summary>Lays out <paramref name="rows"/> (height × width patches, row-major, <paramref name="dim"/> floats each).</summary>
    public static WindowGrid Pack(ReadOnlySpan<float> rows, int height, int width, int dim, int radius)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(radius);
        if (rows.Length < height * width * dim) throw new ArgumentException($"{height}×{width} patches of {dim} need {height * width * dim} floats, got {rows.Length}.", nameof(rows));
        var g = new WindowGrid(height, width, dim, radius);
        for (int y = 0; y < height; y++)
        {
            int rowBase = y * dim * g.Stride + radius;
            for (int x = 0; x < width; x++)
            {
                var patch = rows.Slice((y * width + x) * dim, dim);
                for (int k = 0; k < dim; k++) g.Data[rowBase + k * g.Stride + x] = patch[k];
            }
        }
        return g;
    }

    /// <summary>The patches back, row-major (height × width × dim floats).</summary>
    public void CopyRows(Span<float> rows)
    {
        if (rows.Length < Height * Width * Dim) throw new ArgumentException($"{Height * Width * Dim} floats needed.", nameof(rows));
        for (int y = 0; y < Height; y++)
        {
            int rowBase = y * Dim * Stride + Radius;
            for (int x = 0; x < Width; x++)
            {
                var patch = rows.Slice((y * Width + x) * Dim, Dim);
                for (int k = 0; k < Dim; k++) patch[k] = Data[rowBase + k * Stride + x];
            }
        }
    }
}
