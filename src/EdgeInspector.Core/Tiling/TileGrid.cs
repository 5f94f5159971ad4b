namespace EdgeInspector.Core.Tiling;

/// <summary>A rectangle in pixels: the region of interest in a frame, or a tile in the region.</summary>
public readonly record struct PixelRect(int X, int Y, int Width, int Height)
{
    public int Right => X + Width;

    public int Bottom => Y + Height;

    public override string ToString() => $"[{X}, {Y}, {Width}, {Height}]";
}

/// <summary>
/// The region of interest cut into <see cref="Cols"/> × <see cref="Rows"/> tiles of one size. Neighbours share
/// at least <see cref="Overlap"/> of a tile, so that a defect on a seam is seen whole by one of them. The tiles
/// are spread evenly and the last ones end on the region's edge, so the region is covered exactly.
/// Tiles are numbered row by row, left to right.
/// </summary>
public sealed class TileGrid
{
    private TileGrid(int roiWidth, int roiHeight, int cols, int rows, double overlap, PixelRect[] tiles)
    {
        RoiWidth = roiWidth;
        RoiHeight = roiHeight;
        Cols = cols;
        Rows = rows;
        Overlap = overlap;
        Tiles = tiles;
    }

    public int RoiWidth { get; }

    public int RoiHeight { get; }

    public int Cols { get; }

    public int Rows { get; }

    /// <summary>The overlap asked for, as a fraction of a tile; the tiles may share a pixel more (rounding).</summary>
    public double Overlap { get; }

    /// <summary>The tiles in region coordinates, row by row.</summary>
    public IReadOnlyList<PixelRect> Tiles { get; }

    public int Count => Tiles.Count;

    public int TileWidth => Tiles[0].Width;

    public int TileHeight => Tiles[0].Height;

    /// <summary>One tile: the whole region.</summary>
    public static TileGrid Whole(int roiWidth, int roiHeight) => Create(roiWidth, roiHeight, 1, 1, 0);

    /// <summary>Cuts a region of <paramref name="roiWidth"/> × <paramref name="roiHeight"/> pixels into tiles.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size or count below 1, or an overlap outside [0, 1).</exception>
    public static TileGrid Create(int roiWidth, int roiHeight, int cols, int rows, double overlap)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(roiWidth, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(roiHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(cols, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        if (!(overlap >= 0 && overlap < 1)) throw new ArgumentOutOfRangeException(nameof(overlap), overlap, "The overlap is a fraction of a tile: at least 0 and below 1.");
        var xs = Positions(roiWidth, cols, overlap, out int w);
        var ys = Positions(roiHeight, rows, overlap, out int h);
        var tiles = new PixelRect[cols * rows];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++) tiles[r * cols + c] = new PixelRect(xs[c], ys[r], w, h);
        }
        return new TileGrid(roiWidth, roiHeight, cols, rows, overlap, tiles);
    }

    // n tiles of size s with steps of s(1 - overlap) span s(1 + (n - 1)(1 - overlap)): the smallest s that
    // spans the length, then the starts spread evenly from 0 to length - s.
    private static int[] Positions(int length, int n, double overlap, out int size)
    {
        size = Math.Min(length, (int)Math.Ceiling(length / (1 + (n - 1) * (1 - overlap)) - 1e-9));
        var starts = new int[n];
        for (int i = 0; i < n; i++) starts[i] = n == 1 ? 0 : (int)Math.Round((double)i * (length - size) / (n - 1), MidpointRounding.AwayFromZero);
        return starts;
    }
}
