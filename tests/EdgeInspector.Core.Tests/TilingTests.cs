using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;

namespace EdgeInspector.Core.Tests;

/// <summary>Tiles of a region of interest and their maps stitched back: known answers worked by hand.</summary>
public sealed class TilingTests
{
    [Fact]
    public void Two_tiles_with_half_overlap_cover_ten_pixels_as_zero_to_seven_and_three_to_ten()
    {
        // s(1 + (2 - 1)(1 - 0.5)) >= 10 gives s = 7 (6.67 rounded up); starts spread over 0..10-7.
        var g = TileGrid.Create(10, 4, 2, 1, 0.5);
        Assert.Equal([new PixelRect(0, 0, 7, 4), new PixelRect(3, 0, 7, 4)], g.Tiles);
    }

    [Fact]
    public void Tiles_cover_the_region_exactly_and_share_at_least_the_overlap()
    {
        // 1500 x 1000 (VisA) in 3 x 2 with 0.25: width 1500 / 2.5 = 600, height 1000 / 1.75 = 571.43 -> 572.
        var g = TileGrid.Create(1500, 1000, 3, 2, 0.25);
        Assert.Equal(6, g.Count);
        Assert.Equal((600, 572), (g.TileWidth, g.TileHeight));
        Assert.Equal([0, 450, 900], g.Tiles.Take(3).Select(t => t.X));
        Assert.Equal([0, 428], new[] { g.Tiles[0].Y, g.Tiles[3].Y });
        Assert.Equal(1500, g.Tiles[2].Right);
        Assert.Equal(1000, g.Tiles[5].Bottom);
        Assert.True(g.Tiles[0].Right - g.Tiles[1].X >= 0.25 * g.TileWidth);
        Assert.True(g.Tiles[0].Bottom - g.Tiles[3].Y >= 0.25 * g.TileHeight);
    }

    [Fact]
    public void One_tile_is_the_whole_region()
    {
        var g = TileGrid.Whole(640, 480);
        Assert.Equal([new PixelRect(0, 0, 640, 480)], g.Tiles);
    }

    [Theory]
    [InlineData(0, 1, 0.0)]
    [InlineData(1, 0, 0.0)]
    [InlineData(2, 2, 1.0)]
    [InlineData(2, 2, -0.1)]
    [InlineData(2, 2, double.NaN)]
    public void Counts_below_one_and_overlaps_outside_zero_to_one_are_refused(int cols, int rows, double overlap)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TileGrid.Create(100, 100, cols, rows, overlap));
    }

    [Fact]
    public void Overlapping_tiles_cross_over_linearly_and_keep_their_own_values_elsewhere()
    {
        // Tiles [0, 7) and [3, 10) of a 10-pixel row, at 1 and 3. Pixels 0-2 see tile 0 only, 7-9 tile 1 only.
        // Pixel centres 3.5 .. 6.5 lie 7 - u inside tile 0 and u - 3 inside tile 1: (1(7 - u) + 3(u - 3)) / 4.
        var g = TileGrid.Create(10, 1, 2, 1, 0.5);
        var map = new float[10];
        TileStitcher.Stitch(g, [[1f, 1f], [3f, 3f]], 1, 2, map, 10, 1);
        Assert.Equal([1f, 1, 1, 1.25f, 1.75f, 2.25f, 2.75f, 3, 3, 3], map);
    }

    [Fact]
    public void One_tile_stitched_at_its_own_size_is_the_whole_frame_upsampling()
    {
        // The plain twin: a single tile over the region is the frame's own map.
        var grid = new float[] { 0, 1, 4, 2, 3, 5, 9, 7, 6, 8, 2, 1 }; // 3 x 4
        var g = TileGrid.Whole(13, 9);
        var stitched = new float[13 * 9];
        var plain = new float[13 * 9];
        TileStitcher.Stitch(g, [grid], 3, 4, stitched, 13, 9);
        AnomalyMap.Upsample(grid, 3, 4, plain, 9, 13);
        for (int i = 0; i < plain.Length; i++) Assert.Equal(plain[i], stitched[i], 5);
    }

    [Fact]
    public void A_defect_on_one_tile_lands_where_that_tile_lies_in_the_region()
    {
        // 2 x 2 tiles without overlap over 8 x 8; the bottom-right tile's grid is hot in its top-left patch.
        var g = TileGrid.Create(8, 8, 2, 2, 0);
        var cold = new float[4];
        var hot = new float[] { 5, 0, 0, 0 };
        var map = new float[8 * 8];
        TileStitcher.Stitch(g, [cold, cold, cold, hot], 2, 2, map, 8, 8);
        Assert.Equal(5f, map[4 * 8 + 4]); // the tile's corner pixel (4, 4) carries the grid's corner
        Assert.Equal(0f, map[3 * 8 + 3]); // the top-left tile is untouched
        Assert.Equal(0f, map[7 * 8 + 7]);
        Assert.Equal(5f, map.Max());
    }

    [Fact]
    public void Grids_that_do_not_match_the_tiles_are_refused()
    {
        var g = TileGrid.Create(8, 8, 2, 1, 0);
        Assert.Throws<ArgumentException>(() => TileStitcher.Stitch(g, [new float[4]], 2, 2, new float[64], 8, 8));
        Assert.Throws<ArgumentException>(() => TileStitcher.Stitch(g, [new float[4], new float[3]], 2, 2, new float[64], 8, 8));
    }
}
