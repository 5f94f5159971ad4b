using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using EdgeInspector.Imaging;
using OpenCvSharp;

namespace EdgeInspector.Integration.Tests;

/// <summary>
/// The decoder takes what converts faithfully to the backbone's 8-bit colour (8/16-bit gray, RGB, RGBA,
/// palette, CMYK) and refuses the rest by name, instead of scoring raw bytes. Files are written here, by
/// hand where OpenCV cannot write the format (palette PNG, CMYK and float TIFF), so each case is known.
/// </summary>
public class DecoderTests
{
    private static (byte B, byte G, byte R) Pixel(Mat image, int y, int x)
    {
        using var bgr = ImagePreprocessor.ToBgr8(image);
        var v = bgr.At<Vec3b>(y, x);
        return (v.Item0, v.Item1, v.Item2);
    }

    [Fact]
    public void Accepted_formats_decode_to_the_expected_colour()
    {
        using var tmp = new TempFolder();
        // 8-bit gray, 16-bit gray, RGB, RGBA through OpenCV's own writers.
        string gray8 = Path.Combine(tmp.Path, "gray8.png"), gray16 = Path.Combine(tmp.Path, "gray16.png"), rgba = Path.Combine(tmp.Path, "rgba.png"), rgb16 = Path.Combine(tmp.Path, "rgb16.tiff");
        using (var m = new Mat(4, 4, MatType.CV_8UC1, new Scalar(200))) Cv2.ImWrite(gray8, m);
        using (var m = new Mat(4, 4, MatType.CV_16UC1, new Scalar(65535))) Cv2.ImWrite(gray16, m);
        using (var m = new Mat(4, 4, MatType.CV_8UC4, new Scalar(10, 20, 30, 128))) Cv2.ImWrite(rgba, m);
        using (var m = new Mat(4, 4, MatType.CV_16UC3, new Scalar(0, 257 * 100, 65535))) Cv2.ImWrite(rgb16, m);
        using (var m = ImagePreprocessor.Decode(gray8)) Assert.Equal(((byte)200, (byte)200, (byte)200), Pixel(m, 1, 1));
        using (var m = ImagePreprocessor.Decode(gray16)) Assert.Equal(((byte)255, (byte)255, (byte)255), Pixel(m, 1, 1));
        using (var m = ImagePreprocessor.Decode(rgba)) Assert.Equal(((byte)10, (byte)20, (byte)30), Pixel(m, 1, 1));
        using (var m = ImagePreprocessor.Decode(rgb16)) Assert.Equal(((byte)0, (byte)100, (byte)255), Pixel(m, 1, 1));

        // A palette PNG: index 0 is red, index 1 blue; the left column is 1.
        string palette = Path.Combine(tmp.Path, "palette.png");
        File.WriteAllBytes(palette, PalettePng(4, 4, [(255, 0, 0), (0, 0, 255)], (x, y) => (byte)(x == 0 ? 1 : 0)));
        using (var m = ImagePreprocessor.Decode(palette))
        {
            Assert.Equal(((byte)0, (byte)0, (byte)255), Pixel(m, 2, 2)); // red, as BGR
            Assert.Equal(((byte)255, (byte)0, (byte)0), Pixel(m, 2, 0)); // blue
        }

        // A CMYK TIFF: C 0, M 255, Y 255, K 0 is red.
        string cmyk = Path.Combine(tmp.Path, "cmyk.tiff");
        File.WriteAllBytes(cmyk, Tiff(4, 4, photometric: 5, bits: 8, sampleFormat: 1, [0, 255, 255, 0]));
        using (var m = ImagePreprocessor.Decode(cmyk))
        {
            var (b, g, r) = Pixel(m, 1, 1);
            Assert.True(r > 240 && g < 15 && b < 15, $"CMYK red decoded as B{b} G{g} R{r}");
        }
    }

    public static TheoryData<string, int, int, byte[], string> Refused => new()
    {
        { "float32 gray TIFF", 32, 3, BitConverter.GetBytes(0.5f), "32-bit float" },
        { "float64 gray TIFF", 64, 3, BitConverter.GetBytes(0.5), "64-bit float" },
        { "signed 16-bit gray TIFF", 16, 2, BitConverter.GetBytes((short)-5), "16-bit signed" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Formats_without_a_faithful_conversion_are_refused_by_name(string what, int bits, int sampleFormat, byte[] sample, string named)
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "frame.tiff");
        File.WriteAllBytes(path, Tiff(4, 4, photometric: 1, bits, sampleFormat, sample));
        var e = Assert.Throws<ImageDecodeException>(() => ImagePreprocessor.Decode(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(named, e.Message);
        // The same bytes from a camera or a replay (decoded in memory) get the same answer.
        var e2 = Assert.Throws<ImageDecodeException>(() => ImagePreprocessor.Decode(File.ReadAllBytes(path), "frame 7"));
        Assert.StartsWith("frame 7: ", e2.Message);
        Assert.Contains(named, e2.Message);
        _ = what;
    }

    [Fact]
    public void An_image_OpenCV_wrote_as_float_is_refused_not_scored_on_its_bytes()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "float.tiff");
        using (var m = new Mat(8, 8, MatType.CV_32FC3, new Scalar(0.25, 0.5, 0.75))) Cv2.ImWrite(path, m);
        var e = Assert.Throws<ImageDecodeException>(() => ImagePreprocessor.Decode(path));
        Assert.Contains("32-bit float", e.Message);
        // ToBgr8 refuses it as well, whoever calls it (the heatmap renderer, the preprocessor).
        using var f = new Mat(8, 8, MatType.CV_32FC1, new Scalar(0.5));
        Assert.Throws<ImageDecodeException>(() => ImagePreprocessor.ToBgr8(f));
    }

    /// <summary>An uncompressed little-endian TIFF, one strip, every pixel the same sample bytes.</summary>
    internal static byte[] Tiff(int w, int h, int photometric, int bits, int sampleFormat, byte[] pixel)
    {
        int spp = photometric switch { 2 => 3, 5 => 4, _ => 1 };
        if (photometric != 5 && pixel.Length != bits / 8) throw new ArgumentException("one sample per pixel expected");
        var entries = new List<(ushort Tag, ushort Type, uint Count, uint Value)>();
        const int entryCount = 11;
        int ifd = 8, extra = ifd + 2 + entryCount * 12 + 4;
        var extraBytes = new List<byte>();
        uint ShortArray(int value)
        {
            if (spp <= 2) return (uint)(value | (spp == 2 ? value << 16 : 0));
            uint offset = (uint)(extra + extraBytes.Count);
            for (int i = 0; i < spp; i++) { extraBytes.Add((byte)value); extraBytes.Add((byte)(value >> 8)); }
            return offset;
        }
        uint bitsValue = ShortArray(bits), formatValue = ShortArray(sampleFormat);
        int data = extra + extraBytes.Count;
        int bytesPerPixel = pixel.Length;
        int count = w * h * bytesPerPixel;
        entries.Add((256, 4, 1, (uint)w));
        entries.Add((257, 4, 1, (uint)h));
        entries.Add((258, 3, (uint)spp, bitsValue));
        entries.Add((259, 3, 1, 1));
        entries.Add((262, 3, 1, (uint)photometric));
        entries.Add((273, 4, 1, (uint)data));
        entries.Add((277, 3, 1, (uint)spp));
        entries.Add((278, 4, 1, (uint)h));
        entries.Add((279, 4, 1, (uint)count));
        entries.Add((284, 3, 1, 1));
        entries.Add((339, 3, (uint)spp, formatValue));
        var o = new byte[data + count];
        "II"u8.CopyTo(o);
        BinaryPrimitives.WriteUInt16LittleEndian(o.AsSpan(2), 42);
        BinaryPrimitives.WriteUInt32LittleEndian(o.AsSpan(4), (uint)ifd);
        BinaryPrimitives.WriteUInt16LittleEndian(o.AsSpan(ifd), entryCount);
        for (int i = 0; i < entries.Count; i++)
        {
            var (tag, type, n, value) = entries[i];
            var e = o.AsSpan(ifd + 2 + 12 * i);
            BinaryPrimitives.WriteUInt16LittleEndian(e, tag);
            BinaryPrimitives.WriteUInt16LittleEndian(e[2..], type);
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], n);
            BinaryPrimitives.WriteUInt32LittleEndian(e[8..], value);
        }
        extraBytes.CopyTo(o, extra);
        for (int p = 0; p < w * h; p++) pixel.CopyTo(o, data + p * bytesPerPixel);
        return o;
    }

    /// <summary>An 8-bit palette PNG.</summary>
    internal static byte[] PalettePng(int w, int h, (byte R, byte G, byte B)[] palette, Func<int, int, byte> index)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8;  // bit depth
        ihdr[9] = 3;  // colour type: palette
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "PLTE", [.. palette.SelectMany(c => new[] { c.R, c.G, c.B })]);
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        {
            for (int y = 0; y < h; y++)
            {
                z.WriteByte(0); // filter: none
                for (int x = 0; x < w; x++) z.WriteByte(index(x, y));
            }
        }
        Chunk(png, "IDAT", raw.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        byte[] body = [.. Encoding.ASCII.GetBytes(type), .. data];
        s.Write(body);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(body));
        s.Write(crc);
    }

    private static uint Crc32(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }
}
