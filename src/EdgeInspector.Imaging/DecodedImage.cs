using System.Globalization;
using EdgeInspector.Core.Tiling;
using OpenCvSharp;

namespace EdgeInspector.Imaging;

/// <summary>How a camera's raw buffer is laid out (GenICam pixel format names).</summary>
public enum RawLayout
{
    /// <summary>8-bit grey.</summary>
    Mono8,
    /// <summary>8-bit BGR, packed.</summary>
    Bgr8,
    /// <summary>8-bit RGB, packed.</summary>
    Rgb8,
    /// <summary>Bayer RG 8-bit.</summary>
    BayerRG8,
    /// <summary>Bayer GR 8-bit.</summary>
    BayerGR8,
    /// <summary>Bayer GB 8-bit.</summary>
    BayerGB8,
    /// <summary>Bayer BG 8-bit.</summary>
    BayerBG8,
}

/// <summary>
/// A decoded frame, as the rest of the service sees it: OpenCV's types stay inside this adapter. Holds
/// only images <see cref="ImagePreprocessor.Describe"/> accepts (8/16-bit, 1/3/4 channels).
/// </summary>
public sealed class DecodedImage : IDisposable
{
    internal DecodedImage(Mat mat) => Mat = mat;

    internal Mat Mat { get; }

    /// <summary>Width in pixels.</summary>
    public int Width => Mat.Width;

    /// <summary>Height in pixels.</summary>
    public int Height => Mat.Height;

    /// <summary>Decodes an encoded image (PNG, JPEG, TIFF, …); <paramref name="what"/> names it in errors.</summary>
    public static DecodedImage FromEncoded(ReadOnlySpan<byte> encoded, string what)
    {
        if (encoded.IsEmpty) throw new ImageDecodeException($"{what}: empty or unreadable file.");
        try
        {
            return new DecodedImage(ImagePreprocessor.Decode(encoded, what));
        }
        catch (OpenCVException e)
        {
            throw new ImageDecodeException($"{what}: not a decodable image ({e.Message}).");
        }
    }

    /// <summary>Reads an image file.</summary>
    public static DecodedImage FromFile(string path) => new(ImagePreprocessor.Decode(path));

    /// <summary>Copies a camera's raw buffer, converting Bayer and RGB to BGR; <paramref name="origin"/> names it in errors.</summary>
    public static unsafe DecodedImage FromRaw(ReadOnlySpan<byte> pixels, int width, int height, RawLayout layout, string origin)
    {
        (MatType type, int bpp, ColorConversionCodes? convert) = layout switch
        {
            RawLayout.Mono8 => (MatType.CV_8UC1, 1, (ColorConversionCodes?)null),
            RawLayout.Bgr8 => (MatType.CV_8UC3, 3, null),
            RawLayout.Rgb8 => (MatType.CV_8UC3, 3, ColorConversionCodes.RGB2BGR),
            RawLayout.BayerRG8 => (MatType.CV_8UC1, 1, ColorConversionCodes.BayerRG2BGR),
            RawLayout.BayerGR8 => (MatType.CV_8UC1, 1, ColorConversionCodes.BayerGR2BGR),
            RawLayout.BayerGB8 => (MatType.CV_8UC1, 1, ColorConversionCodes.BayerGB2BGR),
            _ => (MatType.CV_8UC1, 1, ColorConversionCodes.BayerBG2BGR),
        };
        if (width <= 0 || height <= 0 || pixels.Length < width * height * bpp) throw new ImageDecodeException($"{origin}: {pixels.Length} bytes cannot hold a {width}×{height} {layout} image.");
        var mat = new Mat(height, width, type);
        pixels[..(width * height * bpp)].CopyTo(new Span<byte>((void*)mat.Data, width * height * bpp));
        if (convert is not { } code) return new DecodedImage(mat);
        var bgr = new Mat();
        Cv2.CvtColor(mat, bgr, code);
        mat.Dispose();
        return new DecodedImage(bgr);
    }

    /// <summary>Whether <paramref name="region"/> lies inside the image.</summary>
    public bool Contains(PixelRect region) => region.X >= 0 && region.Y >= 0 && region.Right <= Width && region.Bottom <= Height;

    /// <summary>A view of <paramref name="region"/> (no copy; valid while this image is): what the backbone sees of a frame with an ROI.</summary>
    public DecodedImage Region(PixelRect region)
    {
        if (!Contains(region)) throw new ImageDecodeException($"the region {region} reaches beyond the {Width}×{Height} image.");
        return new DecodedImage(new Mat(Mat, new Rect(region.X, region.Y, region.Width, region.Height)));
    }

    /// <summary>An independent copy (the archive keeps one while the frame goes on).</summary>
    public DecodedImage Clone() => new(Mat.Clone());

    /// <summary>The image as PNG bytes.</summary>
    public byte[] EncodePng()
    {
        Cv2.ImEncode(".png", Mat, out byte[] png);
        return png;
    }

    /// <summary>
    /// The image with its anomaly map blended over it as a JPEG, no larger than <paramref name="longSide"/>
    /// pixels: what a heatmap message and the archive carry.
    /// </summary>
    /// <param name="region">The region the map covers, in this image's pixels (outlined); null: the whole image.</param>
    public byte[] HeatmapJpeg(ReadOnlySpan<float> map, int mapWidth, int mapHeight, float low, float high, string caption, int quality, int longSide = 512, PixelRect? region = null)
    {
        int l = Math.Max(Width, Height);
        using var small = l <= longSide ? Mat.Clone() : Shrink(l, longSide);
        Rect? r = null;
        if (region is { } g)
        {
            // The region in the shrunk image's pixels, kept inside it.
            double f = (double)small.Width / Width;
            int x = (int)Math.Floor(g.X * f), y = (int)Math.Floor(g.Y * f);
            int right = Math.Min(small.Width, (int)Math.Ceiling(g.Right * f)), bottom = Math.Min(small.Height, (int)Math.Ceiling(g.Bottom * f));
            r = new Rect(x, y, Math.Max(1, right - x), Math.Max(1, bottom - y));
        }
        using var overlay = HeatmapRenderer.Overlay(small, r, map, mapWidth, mapHeight, low, high, caption: caption);
        Cv2.ImEncode(".jpg", overlay, out byte[] jpeg, new ImageEncodingParam(ImwriteFlags.JpegQuality, quality));
        return jpeg;
    }

    private Mat Shrink(int longest, int longSide)
    {
        var m = new Mat();
        Cv2.Resize(Mat, m, new Size(Width * longSide / longest, Height * longSide / longest), 0, 0, InterpolationFlags.Area);
        return m;
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Width}×{Height} {Mat.Type()}");

    /// <inheritdoc />
    public void Dispose() => Mat.Dispose();
}
