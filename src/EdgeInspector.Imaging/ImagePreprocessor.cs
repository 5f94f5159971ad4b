using EdgeInspector.Core.Tiling;
using OpenCvSharp;

namespace EdgeInspector.Imaging;

/// <summary>An image that could not be read. The message names the file and why.</summary>
public sealed class ImageDecodeException(string message) : Exception(message);

/// <summary>
/// Decodes images and writes them, normalised, into a slot of a batch tensor (3 × H × W, the model's
/// channel order): grayscale is expanded to three channels, the image is resized (bicubic, a plain
/// square resize as MuSc does) and normalised as (x/255 − mean)/std. No per-frame tensor allocation.
/// </summary>
public sealed class ImagePreprocessor(int width, int height, bool rgb, float[] mean, float[] std)
{
    /// <summary>Reads an image file, failing with a message that names it.</summary>
    public static Mat Decode(string path)
    {
        if (!File.Exists(path)) throw new ImageDecodeException($"{path}: file not found.");
        var mat = Cv2.ImRead(path, ImreadModes.Unchanged);
        if (mat.Empty())
        {
            mat.Dispose();
            throw new ImageDecodeException($"{path}: not a decodable image (corrupt or unsupported format).");
        }
        return Faithful(mat, path);
    }

    /// <summary>Decodes an encoded image held in memory (a camera's JPEG, say); <paramref name="what"/> names it in errors.</summary>
    public static Mat Decode(ReadOnlySpan<byte> encoded, string what)
    {
        var mat = Cv2.ImDecode(encoded, ImreadModes.Unchanged);
        if (mat.Empty())
        {
            mat.Dispose();
            throw new ImageDecodeException($"{what}: not a decodable image (corrupt or unsupported format).");
        }
        return Faithful(mat, what);
    }

    /// <summary>
    /// Keeps only images that convert to 8-bit BGR without guessing: 8- or 16-bit unsigned samples with 1, 3
    /// or 4 channels (the decoders have already expanded palettes and converted CMYK). Anything else (float
    /// or signed samples, two channels, more than four) has no agreed mapping to the pixels the backbone
    /// was trained on, so it is refused by name rather than scored on its raw bytes.
    /// </summary>
    private static Mat Faithful(Mat mat, string what)
    {
        if (Describe(mat) is { } problem)
        {
            mat.Dispose();
            throw new ImageDecodeException($"{what}: {problem}");
        }
        return mat;
    }

    /// <summary>Null for an image <see cref="ToBgr8"/> converts faithfully; otherwise what is wrong with it.</summary>
    public static string? Describe(Mat mat)
    {
        int depth = mat.Depth(), channels = mat.Channels();
        bool depthOk = depth == MatType.CV_8U || depth == MatType.CV_16U;
        if (depthOk && channels is 1 or 3 or 4) return null;
        string sample = depth switch
        {
            MatType.CV_8U => "8-bit unsigned",
            MatType.CV_8S => "8-bit signed",
            MatType.CV_16U => "16-bit unsigned",
            MatType.CV_16S => "16-bit signed",
            MatType.CV_32S => "32-bit signed integer",
            MatType.CV_32F => "32-bit float",
            MatType.CV_64F => "64-bit float",
            _ => "16-bit float",
        };
        return $"{sample} samples with {channels} channel(s) are not supported; expected 8- or 16-bit unsigned gray, RGB or RGBA (palette and CMYK images are converted). Convert the image to 8 or 16 bits first.";
    }

    /// <summary>Converts any 1/3/4-channel 8- or 16-bit image to 8-bit BGR; refuses anything else by name.</summary>
    public static Mat ToBgr8(Mat src)
    {
        if (Describe(src) is { } problem) throw new ImageDecodeException("image: " + problem);
        Mat m = src;
        Mat? tmp = null;
        if (src.Depth() == MatType.CV_16U)
        {
            tmp = new Mat();
            src.ConvertTo(tmp, MatType.CV_8U, 1.0 / 257);
            m = tmp;
        }
        var bgr = new Mat();
        switch (m.Channels())
        {
            case 1: Cv2.CvtColor(m, bgr, ColorConversionCodes.GRAY2BGR); break;
            case 4: Cv2.CvtColor(m, bgr, ColorConversionCodes.BGRA2BGR); break;
            case 3: m.CopyTo(bgr); break;
            default:
                bgr.Dispose();
                tmp?.Dispose();
                throw new ImageDecodeException($"unsupported image with {m.Channels()} channels.");
        }
        tmp?.Dispose();
        return bgr;
    }

    /// <summary>Writes the normalised image into <paramref name="slot"/> (3 × height × width floats).</summary>
    public void Write(DecodedImage image, Span<float> slot) => Write(image.Mat, slot);

    /// <summary>
    /// Writes each tile of <paramref name="grid"/>, laid over <paramref name="region"/> of the image, into
    /// consecutive slots of <paramref name="slots"/> (tile t at t × 3 × height × width): what the service and
    /// the eval CLI both feed the backbone. One tile over the whole image is the image itself.
    /// </summary>
    public void WriteTiles(DecodedImage image, PixelRect region, TileGrid grid, Span<float> slots) => WriteTiles(image.Mat, region, grid, slots);

    /// <inheritdoc cref="WriteTiles(DecodedImage, PixelRect, TileGrid, Span{float})"/>
    public void WriteTiles(Mat image, PixelRect region, TileGrid grid, Span<float> slots)
    {
        int size = 3 * width * height;
        if (slots.Length != grid.Count * size) throw new ArgumentException($"Slots hold {slots.Length} floats, {grid.Count} tile(s) need {grid.Count * size}.", nameof(slots));
        if (grid.Count == 1 && region.X == 0 && region.Y == 0 && region.Width == image.Width && region.Height == image.Height)
        {
            Write(image, slots);
            return;
        }
        for (int t = 0; t < grid.Count; t++)
        {
            var r = grid.Tiles[t];
            using var tile = new Mat(image, new Rect(region.X + r.X, region.Y + r.Y, r.Width, r.Height));
            Write(tile, slots.Slice(t * size, size));
        }
    }

    /// <summary>Writes the normalised image into <paramref name="slot"/> (3 × height × width floats).</summary>
    public unsafe void Write(Mat image, Span<float> slot)
    {
        if (slot.Length != 3 * width * height) throw new ArgumentException($"Slot holds {slot.Length} floats, expected 3x{height}x{width}.", nameof(slot));
        using var bgr = ToBgr8(image);
        using var resized = new Mat();
        Cv2.Resize(bgr, resized, new Size(width, height), 0, 0, InterpolationFlags.Cubic);
        int plane = width * height;
        // Model channel c reads BGR channel src[c].
        Span<int> src = rgb ? [2, 1, 0] : [0, 1, 2];
        Span<float> scale = [1f / (255f * std[0]), 1f / (255f * std[1]), 1f / (255f * std[2])];
        Span<float> offset = [-mean[0] / std[0], -mean[1] / std[1], -mean[2] / std[2]];
        for (int y = 0; y < height; y++)
        {
            byte* row = (byte*)resized.Ptr(y);
            for (int x = 0; x < width; x++)
            {
                byte* px = row + 3 * x;
                int o = y * width + x;
                slot[o] = px[src[0]] * scale[0] + offset[0];
                slot[plane + o] = px[src[1]] * scale[1] + offset[1];
                slot[2 * plane + o] = px[src[2]] * scale[2] + offset[2];
            }
        }
    }
}
