namespace EdgeInspector.Service;

/// <summary>
/// Files the service keeps across crashes, replaced whole: written under a temporary name, flushed to the
/// disk and renamed over the old one, so a crash leaves either the old file or the new one. A write that
/// fails leaves no partial file beside it (a snapshot's is tens of MB on a disk that may be full).
/// </summary>
internal static class DurableFile
{
    /// <summary>Replaces <paramref name="path"/> (its folder made if need be) with what <paramref name="write"/> writes.</summary>
    public static void Replace(string path, Action<FileStream> write, int bufferSize = 4096)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = path + ".tmp";
        try
        {
            using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize))
            {
                write(file);
                file.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            throw;
        }
    }
}
