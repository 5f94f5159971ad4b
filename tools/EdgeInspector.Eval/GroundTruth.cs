using EdgeInspector.Core.Tiling;
using EdgeInspector.Imaging;
using OpenCvSharp;

namespace EdgeInspector.Eval;

/// <summary>
/// Each frame's ground truth at the size its map is scored at, the region of interest cut out first when
/// one is set. Untiled maps are small (--image-size square) and every mask is held; a tiled run scores at
/// the region's full resolution, so each mask is read when its frame is counted and let go.
/// </summary>
internal sealed class GroundTruth(IReadOnlyList<FrameItem> frames, PixelRect? roi, bool any)
{
    /// <summary>True when the category has pixel masks.</summary>
    public bool Any => any;

    /// <summary>Frame <paramref name="i"/>'s mask at <paramref name="width"/> × <paramref name="height"/> (all false for a frame without one).</summary>
    public bool[] Of(int i, int width, int height)
    {
        var m = new bool[width * height];
        if (frames[i].MaskPath is not { } path) return m;
        using var raw = Cv2.ImRead(path, ImreadModes.Grayscale);
        if (raw.Empty()) throw new ImageDecodeException($"{path}: mask is not a decodable image.");
        var r = roi ?? new PixelRect(0, 0, raw.Width, raw.Height);
        if (r.Right > raw.Width || r.Bottom > raw.Height) throw new ImageDecodeException($"{path}: the mask is {raw.Width}x{raw.Height}; --roi {r.X},{r.Y},{r.Width},{r.Height} reaches beyond it.");
        using var cut = new Mat(raw, new Rect(r.X, r.Y, r.Width, r.Height));
        using var sized = new Mat();
        if (r.Width == width && r.Height == height) cut.CopyTo(sized);
        else Cv2.Resize(cut, sized, new Size(width, height), 0, 0, InterpolationFlags.Nearest);
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++) m[y * width + x] = sized.At<byte>(y, x) > 127;
        }
        return m;
    }

    /// <summary>Every frame's mask at one size, read in parallel: for the untiled run's small maps.</summary>
    public bool[][] All(int width, int height)
    {
        var masks = new bool[frames.Count][];
        Parallel.For(0, frames.Count, i => masks[i] = Of(i, width, height));
        return masks;
    }
}
