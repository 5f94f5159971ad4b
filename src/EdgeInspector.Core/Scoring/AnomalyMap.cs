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

    /// <summary>
    /// Separable Gaussian smoothing of a patch grid in place (σ in patches, kernel radius ⌈3σ⌉, edges
    /// renormalised). PatchCore smooths its maps (σ = 4 px); MuSc's interval average smooths implicitly,
    /// while a single nearest distance does not.
    /// </summary>
    public static void Smooth(Span<float> grid, int gh, int gw, float sigma)
    {
        if (sigma <= 0) return;
        int r = Math.Max(1, (int)MathF.Ceiling(3 * sigma));
        Span<float> k = stackalloc float[2 * r + 1];
        for (int i = -r; i <= r; i++) k[i + r] = MathF.Exp(-0.5f * i * i / (sigma * sigma));
        var tmp = new float[gh * gw];
        for (int y = 0; y < gh; y++)
        {
            for (int x = 0; x < gw; x++)
            {
                float acc = 0, w = 0;
                for (int i = Math.Max(-r, -x); i <= Math.Min(r, gw - 1 - x); i++)
                {
                    acc += k[i + r] * grid[y * gw + x + i];
                    w += k[i + r];
                }
                tmp[y * gw + x] = acc / w;
            }
        }
        for (int y = 0; y < gh; y++)
        {
            for (int x = 0; x < gw; x++)
            {
                float acc = 0, w = 0;
                for (int i = Math.Max(-r, -y); i <= Math.Min(r, gh - 1 - y); i++)
                {
                    acc += k[i + r] * tmp[(y + i) * gw + x];
                    w += k[i + r];
                }
                grid[y * gw + x] = acc / w;
            }
        }
    }
}
