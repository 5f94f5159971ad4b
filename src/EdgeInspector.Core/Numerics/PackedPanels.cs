namespace EdgeInspector.Core.Numerics;

/// <summary>
/// Reference vectors (rows of length <see cref="Dim"/>) re-laid column-major into panels of
/// <see cref="PanelWidth"/> columns, so that the max-dot kernel reads one contiguous
/// <c>PanelWidth</c>-float strip per feature index and needs no horizontal sums.
/// </summary>
/// <remarks>
/// Rows are grouped into segments (one per source frame, typically), and each segment is padded
/// on its own to a whole number of panels by repeating its last row: a repeated row cannot change
/// a maximum, and whole-panel segments let a caller skip one segment (a frame's own elements) at no
/// cost. Padding columns map to index -1 and never receive a column maximum.
/// </remarks>
public sealed class PackedPanels
{
    /// <summary>Columns per panel: two 512-bit vectors of floats. The kernels assume this value.</summary>
    public const int PanelWidth = 32;

    private float[] _data = [];
    private float[] _bias = [];
    private int[] _columnIndex = [];
    private int[] _segmentFirstPanel = [0];

    /// <summary>Length of each packed vector.</summary>
    public int Dim { get; private set; }

    /// <summary>Number of real (unpadded) rows.</summary>
    public int Count { get; private set; }

    /// <summary>Number of panels, padding included.</summary>
    public int PanelCount { get; private set; }

    /// <summary>Number of segments.</summary>
    public int SegmentCount => _segmentFirstPanel.Length - 1;

    internal ReadOnlySpan<float> Data => _data.AsSpan(0, PanelCount * PanelWidth * Dim);

    /// <summary>
    /// Per packed column, a constant added to every dot product with that reference (0 unless set).
    /// With a bias of −b/2, max(q·r + bias) finds min ‖q−r‖² + b for unit vectors: a lift of each reference
    /// by √b in an extra coordinate, at no cost in the kernel (accumulators start at the bias).
    /// </summary>
    public ReadOnlySpan<float> Bias => _bias.AsSpan(0, PanelCount * PanelWidth);

    /// <summary>True once a bias was set by <see cref="SetBias"/>.</summary>
    public bool HasBias { get; private set; }

    /// <summary>Sets the bias of each row (length Count), in row order; padding copies its row's bias.</summary>
    public void SetBias(ReadOnlySpan<float> rowBias)
    {
        if (rowBias.Length != Count) throw new ArgumentException($"{rowBias.Length} biases for {Count} rows.", nameof(rowBias));
        for (int c = 0; c < PanelCount * PanelWidth; c++)
        {
            int j = _columnIndex[c];
            _bias[c] = j >= 0 ? rowBias[j] : _bias[c - 1];
        }
        HasBias = true;
    }

    /// <summary>For each packed column, the row it came from, or -1 for padding.</summary>
    public ReadOnlySpan<int> ColumnIndex => _columnIndex.AsSpan(0, PanelCount * PanelWidth);

    /// <summary>First panel of segment <paramref name="segment"/>; the end is the next segment's first panel.</summary>
    public int SegmentFirstPanel(int segment) => _segmentFirstPanel[segment];

    /// <summary>Packs <paramref name="rows"/> (count x dim, row-major) as a single segment.</summary>
    public static PackedPanels Pack(ReadOnlySpan<float> rows, int dim)
    {
        var p = new PackedPanels();
        p.Repack(rows, dim, [rows.Length / Math.Max(dim, 1)]);
        return p;
    }

    /// <summary>
    /// Packs <paramref name="rows"/> (row-major, <paramref name="dim"/> wide) into this instance,
    /// reusing its buffers. <paramref name="segmentLengths"/> splits the rows, in order, into segments.
    /// </summary>
    public void Repack(ReadOnlySpan<float> rows, int dim, ReadOnlySpan<int> segmentLengths)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
        int count = 0, panels = 0;
        foreach (int len in segmentLengths)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(len);
            count += len;
            panels += (len + PanelWidth - 1) / PanelWidth;
        }
        if (count * dim != rows.Length)
        {
            throw new ArgumentException($"Segments hold {count} rows of {dim}, but {rows.Length} floats were given.", nameof(rows));
        }

        Dim = dim;
        Count = count;
        PanelCount = panels;
        if (_data.Length < panels * PanelWidth * dim) _data = new float[panels * PanelWidth * dim];
        if (_columnIndex.Length < panels * PanelWidth) _columnIndex = new int[panels * PanelWidth];
        if (_bias.Length < panels * PanelWidth) _bias = new float[panels * PanelWidth];
        _bias.AsSpan(0, panels * PanelWidth).Clear();
        HasBias = false;
        if (_segmentFirstPanel.Length != segmentLengths.Length + 1) _segmentFirstPanel = new int[segmentLengths.Length + 1];

        int panel = 0, row0 = 0;
        for (int s = 0; s < segmentLengths.Length; s++)
        {
            _segmentFirstPanel[s] = panel;
            int len = segmentLengths[s];
            for (int start = 0; start < len; start += PanelWidth, panel++)
            {
                Span<float> dst = _data.AsSpan(panel * PanelWidth * dim, PanelWidth * dim);
                for (int c = 0; c < PanelWidth; c++)
                {
                    bool real = start + c < len;
                    int row = row0 + Math.Min(start + c, len - 1);
                    _columnIndex[panel * PanelWidth + c] = real ? row : -1;
                    ReadOnlySpan<float> src = rows.Slice(row * dim, dim);
                    for (int k = 0; k < dim; k++) dst[k * PanelWidth + c] = src[k];
                }
            }
            row0 += len;
        }
        _segmentFirstPanel[segmentLengths.Length] = panel;
    }

    /// <summary>The real rows back in row-major order (Count × Dim): the inverse of <see cref="Repack"/>, segments concatenated.</summary>
    public void CopyRows(Span<float> rows)
    {
        if (rows.Length != Count * Dim) throw new ArgumentException($"{rows.Length} floats for {Count} rows of {Dim}.", nameof(rows));
        for (int c = 0; c < PanelCount * PanelWidth; c++)
        {
            int row = _columnIndex[c];
            if (row < 0) continue;
            int panel = c / PanelWidth, col = c % PanelWidth;
            ReadOnlySpan<float> src = _data.AsSpan(panel * PanelWidth * Dim, PanelWidth * Dim);
            Span<float> dst = rows.Slice(row * Dim, Dim);
            for (int k = 0; k < Dim; k++) dst[k] = src[k * PanelWidth + col];
        }
    }
}
