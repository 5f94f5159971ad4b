namespace EdgeInspector.Core.Numerics;

/// <summary>
/// A reservoir frame's kept patches (its k-center subset) for the subset search (<see cref="KeptMaxDot"/>),
/// in the bytes of the window search: [Count][⌈D/4⌉·4], each value a level of <see cref="Step"/> stored
/// offset by <see cref="WindowGrid.Zero"/>, features past D at the offset (a 0).
/// </summary>
/// <remarks>
/// Where the reservoir searches a window, the kept patches are rows of the frame's <see cref="WindowGrid"/>:
/// <see cref="Gather"/> copies their bytes and the grid's step, so the subset and the window see one frame at
/// one set of levels, and a reservoir frame holds nothing but its grid, these bytes and their indices.
/// Without a window, <see cref="Pack"/> gives the rows their own step (<see cref="WindowGrid.StepOf"/>): packed
/// again from <see cref="CopyRows"/>' values, they get the same step and the same bytes.
/// </remarks>
public sealed class KeptRows
{
    private KeptRows(int count, int dim, float step)
    {
        Count = count;
        Dim = dim;
        Blocks = WindowGrid.BlocksOf(dim);
        Step = step;
        Data = new byte[count * Blocks * WindowGrid.Group];
    }

    /// <summary>Rows held.</summary>
    public int Count { get; }

    /// <summary>Feature width.</summary>
    public int Dim { get; }

    /// <summary>Groups of four features per row (the last one padded).</summary>
    public int Blocks { get; }

    /// <summary>Bytes from one row to the next.</summary>
    public int RowBytes => Blocks * WindowGrid.Group;

    /// <summary>The value of one level.</summary>
    public float Step { get; }

    /// <summary>The rows, offset by <see cref="WindowGrid.Zero"/>.</summary>
    public byte[] Data { get; }

    /// <summary>Bytes held.</summary>
    public long AllocatedBytes => Data.Length;

    /// <summary>Bytes <paramref name="count"/> rows of <paramref name="dim"/> take.</summary>
    public static long BytesFor(int count, int dim) => (long)count * WindowGrid.BlocksOf(dim) * WindowGrid.Group;

    /// <summary>The patches <paramref name="patches"/> (row-major indices into the grid) of <paramref name="grid"/>, at its levels.</summary>
    public static KeptRows Gather(WindowGrid grid, ReadOnlySpan<int> patches)
    {
        if (patches.IsEmpty) throw new ArgumentException("At least one patch is kept.", nameof(patches));
        var kept = new KeptRows(patches.Length, grid.Dim, grid.Step);
        int n = grid.Height * grid.Width;
        for (int c = 0; c < patches.Length; c++)
        {
            int q = patches[c];
            if ((uint)q >= (uint)n) throw new ArgumentOutOfRangeException(nameof(patches), q, $"A {grid.Height}×{grid.Width} grid has patches 0..{n - 1}.");
            var row = kept.Data.AsSpan(c * kept.RowBytes, kept.RowBytes);
            row.Fill(WindowGrid.Zero);
            for (int k = 0; k < grid.Dim; k++) row[k] = grid.Data[grid.IndexOf(q / grid.Width, q % grid.Width + grid.Radius, k)];
        }
        return kept;
    }

    /// <summary><paramref name="count"/> rows of <paramref name="dim"/> (row-major) at levels of their own largest magnitude.</summary>
    public static KeptRows Pack(ReadOnlySpan<float> rows, int count, int dim)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (rows.Length < count * dim) throw new ArgumentException($"{count} rows of {dim} need {count * dim} floats, got {rows.Length}.", nameof(rows));
        rows = rows[..(count * dim)];
        var kept = new KeptRows(count, dim, WindowGrid.StepOf(rows));
        float inverse = 1f / kept.Step;
        for (int c = 0; c < count; c++) WindowGrid.StoredLevels(rows.Slice(c * dim, dim), inverse, kept.Data.AsSpan(c * kept.RowBytes, kept.RowBytes));
        return kept;
    }

    /// <summary>The rows' levels (−63…63; a value is its level × <see cref="Step"/>), row-major (Count × Dim): what a snapshot stores of them.</summary>
    public void CopyLevels(Span<sbyte> levels)
    {
        if (levels.Length < Count * Dim) throw new ArgumentException($"{Count * Dim} levels needed.", nameof(levels));
        for (int c = 0; c < Count; c++)
        {
            for (int k = 0; k < Dim; k++) levels[c * Dim + k] = (sbyte)(Data[c * RowBytes + k] - WindowGrid.Zero);
        }
    }

    /// <summary>The rows as the search sees them (each value its level × <see cref="Step"/>), row-major (Count × Dim floats).</summary>
    public void CopyRows(Span<float> rows)
    {
        if (rows.Length < Count * Dim) throw new ArgumentException($"{Count * Dim} floats needed.", nameof(rows));
        for (int c = 0; c < Count; c++)
        {
            for (int k = 0; k < Dim; k++) rows[c * Dim + k] = (Data[c * RowBytes + k] - WindowGrid.Zero) * Step;
        }
    }
}
