using System.Globalization;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// A camera's frame ids, increasing across service restarts. The simplest PLC reads only
/// <c>&lt;frame id&gt;,&lt;0|1&gt;</c> on the reject topic and de-duplicates by that id; were ids to start at 1 again
/// with every run, a new run's verdicts (after the last run's spooled ones, which are delivered first) would
/// look to it like ones it had seen. So the next id not yet handed out is kept on disk beside the spool,
/// reserved <see cref="Block"/> at a time: one small write per block, and a restart skips at most the rest of
/// one. A file that cannot be read or written is logged, and the ids go on in memory. Thread-safe.
/// </summary>
internal sealed class FrameCounter
{
    /// <summary>Ids reserved per write: at 30 frames a second, a write every five and a half minutes.</summary>
    public const long Block = 10_000;

    private readonly string? _path;
    private readonly ILogger? _log;
    private readonly Lock _gate = new();
    private long _last; // the last id handed out
    private long _reserved; // the last id the file covers

    /// <summary>A counter kept in <paramref name="path"/>; without a path, in memory only, from 1.</summary>
    public FrameCounter(string? path = null, ILogger? log = null)
    {
        _path = path;
        _log = log;
        First = Read();
        _last = _reserved = First - 1;
        if (_path is not null) Reserve();
    }

    /// <summary>The first id this counter hands out: 1, or where the file said the last run stopped.</summary>
    public long First { get; }

    public long Next()
    {
        lock (_gate)
        {
            if (++_last > _reserved && _path is not null) Reserve();
            return _last;
        }
    }

    private long Read()
    {
        if (_path is null || !File.Exists(_path)) return 1;
        try
        {
            string text = File.ReadAllText(_path).Trim();
            if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long next) && next >= 1) return next;
            _log?.LogError("Frame ids: {Path} holds '{Text}', not the next frame id; ids start at 1 again, and a PLC that de-duplicates by frame id alone may take this run's first frames for earlier ones", _path, text.Length > 40 ? text[..40] : text);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log?.LogError("Frame ids: {Path} cannot be read ({Error}); ids start at 1 again, and a PLC that de-duplicates by frame id alone may take this run's first frames for earlier ones", _path, e.Message);
        }
        return 1;
    }

    /// <summary>Writes the next block's end, whole: a crash leaves the old file or the new one.</summary>
    private void Reserve()
    {
        long next = _last + 1 + Block;
        _reserved = next - 1;
        try
        {
            DurableFile.Replace(_path!, file => file.Write(System.Text.Encoding.ASCII.GetBytes(next.ToString(CultureInfo.InvariantCulture) + "\n")));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log?.LogError("Frame ids: {Path} cannot be written ({Error}); ids go on from {Next} in memory, and after a restart they may repeat", _path, e.Message, _last + 1);
        }
    }
}
