namespace EdgeInspector.Core.Tiling;

/// <summary>Per-tile patch grids back to one map over the whole region of interest.</summary>
public static class TileStitcher
{
    /// <summary>
    /// Writes the map of the region at <paramref name="width"/> × <paramref name="height"/>: each tile's
    /// <paramref name="gh"/> × <paramref name="gw"/> grid is sampled bilinearly over the part of the map the tile
    /// covers (grid corners on the tile's corner pixels, as <see cref="Scoring.AnomalyMap.Upsample"/> does for a
    /// whole frame). Where tiles overlap, each counts in proportion to how far the pixel lies inside it (a
    /// tent over the tile), so the map crosses over linearly from one tile to the next: tiles whose scores
    /// sit at slightly different levels meet without a step that would read as an edge on the heatmap.
    /// </summary>
    public static void Stitch(TileGrid tiles, IReadOnlyList<float[]> grids, int gh, int gw, Span<float> map, int width, int height)
    {
        if (grids.Count != tiles.Count) throw new ArgumentException($"{grids.Count} grids for {tiles.Count} tiles.", nameof(grids));
        if (map.Length != width * height) throw new ArgumentException($"Map holds {map.Length} values, expected {height}x{width}.", nameof(map));
        for (int t = 0; t < grids.Count; t++)
        {
            if (grids[t].Length != gh * gw) throw new ArgumentException($"Grid {t} holds {grids[t].Length} values, expected {gh}x{gw}.", nameof(grids));
        }
        double scaleX = (double)tiles.RoiWidth / width, scaleY = (double)tiles.RoiHeight / height;
        var weight = new float[width * height];
        map.Clear();
        for (int t = 0; t < tiles.Count; t++)
        {
            var rect = tiles.Tiles[t];
            var grid = grids[t];
            double gy = rect.Height > 1 ? (double)(gh - 1) / (rect.Height - 1) : 0;
            double gx = rect.Width > 1 ? (double)(gw - 1) / (rect.Width - 1) : 0;
            for (int y = 0; y < height; y++)
            {
                // The map pixel's centre in region pixels, then in the tile's pixel indices.
                double v = (y + 0.5) * scaleY;
                if (v < rect.Y || v >= rect.Bottom) continue;
                double fy = Math.Clamp(v - 0.5 - rect.Y, 0, rect.Height - 1) * gy;
                double wyTent = Math.Min(v - rect.Y, rect.Bottom - v);
                int y0 = Math.Min((int)fy, gh - 1), y1 = Math.Min(y0 + 1, gh - 1);
                float wy = (float)(fy - y0);
                for (int x = 0; x < width; x++)
                {
                    double u = (x + 0.5) * scaleX;
                    if (u < rect.X || u >= rect.Right) continue;
                    double fx = Math.Clamp(u - 0.5 - rect.X, 0, rect.Width - 1) * gx;
                    int x0 = Math.Min((int)fx, gw - 1), x1 = Math.Min(x0 + 1, gw - 1);
                    float wx = (float)(fx - x0);
                    float top = grid[y0 * gw + x0] * (1 - wx) + grid[y0 * gw + x1] * wx;
                    float bottom = grid[y1 * gw + x0] * (1 - wx) + grid[y1 * gw + x1] * wx;
                    float w = (float)(wyTent * Math.Min(u - rect.X, rect.Right - u));
                    map[y * width + x] += w * (top * (1 - wy) + bottom * wy);
                    weight[y * width + x] += w;
                }
            }
        }
        for (int i = 0; i < map.Length; i++) map[i] = weight[i] > 0 ? map[i] / weight[i] : 0;
    }
}
