using System.Diagnostics;

namespace EdgeInspector.Cameras;

/// <summary>
/// Replays a folder of images at a set frame rate, once or looping: the demo's camera and the tests'.
/// Files are read as bytes (decoded later, so a corrupt file becomes that frame's error verdict); the
/// part id is the file's path inside the folder. Pacing uses absolute times, so a slow consumer does not make the replay
/// drift slower: like a real line, it keeps producing and the queue policy decides. Given
/// <paramref name="triggers"/>, it takes its next image only on a trigger instead, and the frame carries
/// the trigger's part id.
/// </summary>
public sealed class FolderReplaySource(string folder, double fps, bool loop, int? shuffleSeed = null, TriggerQueue? triggers = null) : IFrameSource
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"];

    /// <summary>The file extensions it replays, lower case.</summary>
    public static IReadOnlyList<string> ImageExtensions => Extensions;
    private string[] _files = [];
    private int _next;
    private long _due;

    /// <inheritdoc />
    public string Description => $"replay {folder} {(triggers is not null ? "on each PLC trigger" : fps > 0 ? $"at {fps:0.##} fps" : "at full speed")}{(loop ? ", looping" : "")}{(shuffleSeed is { } s ? $", shuffled (seed {s})" : ", in name order")}";

    /// <summary>Lists the image files of a folder, recursively, in ordinal name order.</summary>
    public static string[] ListImages(string folder) =>
        [.. Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal)];

    /// <inheritdoc />
    public bool IsRealTime => fps > 0 || triggers is not null;

    /// <inheritdoc />
    public Task OpenAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(folder)) throw new FrameSourceException($"replay folder not found: {folder}");
        _files = ListImages(folder);
        // Benchmark folders are sorted by defect type; a line is not. A seeded shuffle gives a
        // line-like mix that is the same on every run (and every loop).
        if (shuffleSeed is { } seed) new Random(seed).Shuffle(_files);
        if (_files.Length == 0) throw new FrameSourceException($"replay folder holds no images ({string.Join(", ", Extensions)}): {folder}");
        _due = Stopwatch.GetTimestamp();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public async ValueTask<CapturedFrame?> ReadAsync(CancellationToken cancellationToken)
    {
        if (_next >= _files.Length)
        {
            if (!loop) return null;
            _next = 0;
        }
        string? tag = null;
        if (triggers is not null) tag = await triggers.NextAsync(cancellationToken);
        else if (fps > 0)
        {
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _due);
            if (wait > TimeSpan.Zero) await Task.Delay(wait, cancellationToken);
            _due += (long)(Stopwatch.Frequency / fps);
            // After a long stall (debugger, suspended VM) start pacing afresh rather than bursting.
            if (Stopwatch.GetTimestamp() - _due > Stopwatch.Frequency) _due = Stopwatch.GetTimestamp();
        }
        string file = _files[_next++];
        byte[] bytes;
        // A trigger taken is served even when the service stops meanwhile: its part gets its verdict.
        try { bytes = await File.ReadAllBytesAsync(file, tag is null ? cancellationToken : CancellationToken.None); }
        catch (IOException) { bytes = []; } // an unreadable file is delivered empty: its frame gets an error verdict
        // Part id: the path inside the folder without extension ("broken_large/000"), unique where names repeat.
        string rel = Path.GetRelativePath(folder, file);
        string partId = tag ?? Path.ChangeExtension(rel, null).Replace(Path.DirectorySeparatorChar, '/');
        return CapturedFrame.Encoded(bytes, file, partId, Stopwatch.GetTimestamp(), DateTimeOffset.UtcNow);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
