using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace EdgeInspector.Inference.Onnx;

/// <summary>
/// Whether a GPU execution provider can load here, told before ONNX Runtime tries. Its library
/// (<c>libonnxruntime_providers_cuda.so</c>, <c>…_tensorrt.so</c>) sits beside <c>libonnxruntime.so</c>, and
/// every shared library it links against (its ELF <c>DT_NEEDED</c> entries: the CUDA runtime, cuBLAS, cuDNN,
/// TensorRT) must load. The first that does not is named in one log line; ONNX Runtime's own error says
/// only that the provider failed to load, over several lines of its own log. Read from the file, not from
/// a list: the NuGet build links CUDA 13, JetPack's CUDA 12, and the next release something else.
/// </summary>
public static class ProviderLibraries
{
    /// <summary>
    /// Why <paramref name="provider"/> (cuda or tensorrt) cannot load here, naming the library at fault;
    /// null when every library it needs loads, or when this cannot be told (not Linux, no provider library
    /// found, an unreadable file): ONNX Runtime's own attempt then decides.
    /// </summary>
    public static string? Missing(string provider)
    {
        if (!OperatingSystem.IsLinux()) return null;
        string file = $"libonnxruntime_providers_{provider}.so";
        if (Locate(file) is not { } path) return null;
        IReadOnlyList<string> needed;
        try
        {
            needed = Needed(path);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return null;
        }
        string dir = Path.GetDirectoryName(path)!;
        // cuDNN is loaded by the CUDA provider when it runs, not linked, so its file does not list it;
        // ONNX Runtime's requirements name cuDNN 9 for its CUDA 12 and 13 builds.
        if (provider == "cuda" && !needed.Any(n => n.StartsWith("libcudnn", StringComparison.Ordinal))) needed = [.. needed, "libcudnn.so.9"];
        foreach (string lib in needed)
        {
            if (NativeLibrary.TryLoad(lib, out var handle) || NativeLibrary.TryLoad(Path.Combine(dir, lib), out handle))
            {
                NativeLibrary.Free(handle);
                continue;
            }
            return $"{lib} cannot be loaded, and {file} needs it (install the CUDA, cuDNN and TensorRT versions it links against, or put their folder on LD_LIBRARY_PATH)";
        }
        return null;
    }

    /// <summary>Where <paramref name="file"/> is: beside the libonnxruntime.so this process loaded, else in the application's folders.</summary>
    private static string? Locate(string file)
    {
        var dirs = new List<string>();
        try
        {
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                int at = line.IndexOf('/');
                if (at >= 0 && line.EndsWith("/libonnxruntime.so", StringComparison.Ordinal)) dirs.Add(Path.GetDirectoryName(line[at..])!);
            }
        }
        catch (IOException) { }
        dirs.Add(AppContext.BaseDirectory);
        dirs.Add(Path.Combine(AppContext.BaseDirectory, "runtimes", RuntimeInformation.RuntimeIdentifier, "native"));
        dirs.Add(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"));
        foreach (string d in dirs)
        {
            string p = Path.Combine(d, file);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>The <c>DT_NEEDED</c> entries of a 64-bit little-endian ELF shared library, in file order (what <c>readelf -d</c> lists).</summary>
    public static IReadOnlyList<string> Needed(string path)
    {
        using var f = File.OpenHandle(path);
        Span<byte> header = stackalloc byte[64];
        if (RandomAccess.Read(f, header, 0) < 64 || header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F')
        {
            throw new InvalidDataException($"{path}: not an ELF file.");
        }
        if (header[4] != 2 || header[5] != 1) throw new InvalidDataException($"{path}: not a 64-bit little-endian ELF file.");
        long sectionsAt = (long)BinaryPrimitives.ReadUInt64LittleEndian(header[0x28..]);
        int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3A..]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(header[0x3C..]);
        if (entrySize < 64 || count == 0) throw new InvalidDataException($"{path}: no section headers.");
        var sections = new byte[entrySize * count];
        RandomAccess.Read(f, sections, sectionsAt);
        for (int s = 0; s < count; s++)
        {
            var sh = sections.AsSpan(s * entrySize, entrySize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != 6) continue; // SHT_DYNAMIC
            long dynAt = (long)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x18..]);
            long dynSize = (long)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x20..]);
            int link = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            if (link >= count || dynSize > 1 << 20) throw new InvalidDataException($"{path}: a malformed dynamic section.");
            var strtab = sections.AsSpan(link * entrySize, entrySize);
            long strAt = (long)BinaryPrimitives.ReadUInt64LittleEndian(strtab[0x18..]);
            long strSize = (long)BinaryPrimitives.ReadUInt64LittleEndian(strtab[0x20..]);
            if (strSize > 16 << 20) throw new InvalidDataException($"{path}: a malformed string table.");
            var dyn = new byte[dynSize];
            var strings = new byte[strSize];
            RandomAccess.Read(f, dyn, dynAt);
            RandomAccess.Read(f, strings, strAt);
            var needed = new List<string>();
            for (int e = 0; e + 16 <= dyn.Length; e += 16)
            {
                long tag = BinaryPrimitives.ReadInt64LittleEndian(dyn.AsSpan(e));
                if (tag == 0) break; // DT_NULL
                if (tag != 1) continue; // DT_NEEDED
                int name = (int)BinaryPrimitives.ReadUInt64LittleEndian(dyn.AsSpan(e + 8));
                int end = Array.IndexOf(strings, (byte)0, name);
                if (name >= strings.Length || end < 0) throw new InvalidDataException($"{path}: a needed library's name lies outside the string table.");
                needed.Add(System.Text.Encoding.ASCII.GetString(strings, name, end - name));
            }
            return needed;
        }
        return [];
    }
}
