// A lot whose parts come in four poses, from a category in MVTec layout: each test image and its mask as
// it is, mirrored left-right, mirrored top-bottom or turned 180 degrees, chosen by a hash of its path (the
// same on every run), written losslessly (PNG). The shared categories' parts sit in place; this is how the
// reservoir's k-center subsets, the search for parts that move, are measured (decision 0004). Write it
// outside the repository (the data's licences do not allow copies in it), e.g.:
//   dotnet run scripts/posed-lot.cs -- ../shared/data/visa/macaroni1 /tmp/posed/macaroni1
//   dotnet tools/EdgeInspector.Eval/bin/Release/net10.0/edgeinspector-eval.dll /tmp/posed/macaroni1 --mode all --out out/posed
#:package OpenCvSharp4
#:package OpenCvSharp4.official.runtime.linux-x64
using OpenCvSharp;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: dotnet run scripts/posed-lot.cs -- <category-dir> <out-dir>");
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
    int pose = (int)(h % 4);
    counts[pose]++;
    Mat Turn(Mat m) => pose switch { 0 => m.Clone(), 1 => m.Flip(FlipMode.Y), 2 => m.Flip(FlipMode.X), _ => m.Flip(FlipMode.XY) };
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
Console.WriteLine($"{dst}: {counts.Sum()} images; as they are {counts[0]}, mirrored left-right {counts[1]}, top-bottom {counts[2]}, turned 180° {counts[3]}");
return 0;
