// A lot whose parts move, from a category in MVTec layout, each test image with its mask:
// - by default, in four poses: as it is, mirrored left-right, mirrored top-bottom or turned 180 degrees;
// - with --shift F, moved: cut to (1 - F) of its width and height at an offset within the rest, so that
//   parts sit up to ±F/2 of the frame from the middle and two frames differ by up to F.
// The pose or offset is chosen by a hash of the image's path (the same on every run); the images are
// written losslessly (PNG). The shared categories' parts sit in place; this is how the reservoir's k-center
// subsets, the search for parts that move, are measured (decision 0004). Write it outside the repository
// (the data's licences do not allow copies in it), e.g.:
//   dotnet run scripts/posed-lot.cs -- ../shared/data/visa/macaroni1 /tmp/posed/macaroni1
//   dotnet run scripts/posed-lot.cs -- ../shared/data/visa/macaroni1 /tmp/moved/macaroni1 --shift 0.2
//   dotnet tools/EdgeInspector.Eval/bin/Release/net10.0/edgeinspector-eval.dll /tmp/posed/macaroni1 --mode all --out out/posed
#:package OpenCvSharp4
#:package OpenCvSharp4.official.runtime.linux-x64
using OpenCvSharp;

double shift = 0;
if (args.Length == 4 && args[2] == "--shift")
{
    if (!double.TryParse(args[3], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out shift) || shift <= 0 || shift >= 1)
    {
        Console.Error.WriteLine($"posed-lot: --shift {args[3]}: expected a fraction of the frame above 0 and below 1, e.g. 0.2");
        return 2;
    }
}
else if (args.Length != 2)
{
    Console.Error.WriteLine("usage: dotnet run scripts/posed-lot.cs -- <category-dir> <out-dir> [--shift F]");
    return 2;
}
string src = args[0], dst = args[1];
if (!Directory.Exists(Path.Combine(src, "test")))
{
    Console.Error.WriteLine($"posed-lot: {src} has no test folder (MVTec layout: test/<defect>, ground_truth/<defect>/<name>_mask.png)");
    return 2;
}
int[] counts = new int[4];
foreach (string file in Directory.GetFiles(Path.Combine(src, "test"), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
{
    string rel = Path.GetRelativePath(Path.Combine(src, "test"), file);
    string defect = Path.GetDirectoryName(rel)!;
    string name = Path.GetFileNameWithoutExtension(file);
    // FNV-1a of the path: a pose per image that does not depend on the runtime's string hashing.
    uint h = 2166136261;
    foreach (char c in rel) h = (h ^ c) * 16777619;
    int pose = shift > 0 ? 0 : (int)(h % 4);
    counts[pose]++;
    // With --shift the hash's low and high halves place the cut; a mask is cut at the same place.
    double u = (h & 0xFFFF) / 65535.0, v = (h >> 16) / 65535.0;
    Mat Turn(Mat m)
    {
        if (shift == 0) return pose switch { 0 => m.Clone(), 1 => m.Flip(FlipMode.Y), 2 => m.Flip(FlipMode.X), _ => m.Flip(FlipMode.XY) };
        int w = (int)Math.Round(m.Width * (1 - shift)), hh = (int)Math.Round(m.Height * (1 - shift));
        var cut = new Rect((int)Math.Round(u * (m.Width - w)), (int)Math.Round(v * (m.Height - hh)), w, hh);
        using var view = new Mat(m, cut);
        return view.Clone();
    }
    Directory.CreateDirectory(Path.Combine(dst, "test", defect));
    using (var image = Cv2.ImRead(file, ImreadModes.Unchanged))
    {
        if (image.Empty()) throw new InvalidDataException($"{file}: not an image OpenCV can read");
        using var turned = Turn(image);
        Cv2.ImWrite(Path.Combine(dst, "test", defect, name + ".png"), turned);
    }
    string mask = Path.Combine(src, "ground_truth", defect, name + "_mask.png");
    if (!File.Exists(mask)) continue;
    Directory.CreateDirectory(Path.Combine(dst, "ground_truth", defect));
    using var m = Cv2.ImRead(mask, ImreadModes.Unchanged);
    using var t = Turn(m);
    Cv2.ImWrite(Path.Combine(dst, "ground_truth", defect, name + "_mask.png"), t);
}
Directory.CreateDirectory(Path.Combine(dst, "train", "good"));
Console.WriteLine(shift > 0
    ? $"{dst}: {counts.Sum()} images, each cut to {1 - shift:0.##} of its width and height at an offset of its own"
    : $"{dst}: {counts.Sum()} images; as they are {counts[0]}, mirrored left-right {counts[1]}, top-bottom {counts[2]}, turned 180° {counts[3]}");
return 0;
