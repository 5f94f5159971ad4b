namespace EdgeInspector.Core.Scoring;

/// <summary>Patch-grid scores to pixel maps.</summary>
public static class AnomalyMap
{
    /// <summary>
    /// Bilinear upsampling with align_corners=True (MuSc musc.py L225-226): grid corners land on image
    /// corners, so the map's maximum equals the grid's. No smoothing, as in MuSc.
    /// </summary>
    public static void Upsample(ReadOnlySpan<float> grid, int gh, int gw, Span<float> map, int height, int width)
    {
        if (grid.Length != gh * gw) throw new ArgumentException($"Grid holds {grid.Length} values, expected {gh}x{gw}.", nameof(grid));
        if (map.Length != height * width) throw new ArgumentException($"Map holds {map.Length} values, expected {height}x{width}.", nameof(map));
        float sy = height > 1 ? (float)(gh - 1) / (height - 1) : 0;
        float sx = width > 1 ? (float)(gw - 1) / (width - 1) : 0;
        for (int y = 0; y < height; y++)
        {
            float fy = y * sy;
            int y0 = Math.Min((int)fy, gh - 1), y1 = Math.Min(y0 + 1, gh - 1);
            float wy = fy - y0;
            for (int x = 0; x < width; x++)
            {
                float fx = x * sx;
                int x0 = Math.Min((int)fx, gw - 1), x1 = Math.Min(x0 + 1, gw - 1);
                float wx = fx - x0;
                float top = grid[y0 * gw + x0] * (1 - wx) + grid[y0 * gw + x1] * wx;
                float bottom = grid[y1 * gw + x0] * (1 - wx) + grid[y1 * gw + x1] * wx;
                map[y * width + x] = top * (1 - wy) + bottom * wy;
            }
        }
    }
}
