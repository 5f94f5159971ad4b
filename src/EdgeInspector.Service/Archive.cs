using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Verdicts;
using Microsoft.Extensions.Logging;
using EdgeInspector.Imaging;

namespace EdgeInspector.Service;

/// <summary>
/// Keeps what a quality engineer needs to audit a verdict: the frame as scored (PNG), its heatmap
/// overlay (JPEG) and the verdict record (JSON), under <c>&lt;dir&gt;/&lt;camera&gt;/&lt;yyyy-MM-dd&gt;/</c>.
/// Encoded and written off the inference thread (it only copies the frame) through a small bounded
/// queue: when full, the record is skipped and counted. The archive is bounded twice: by
/// <c>max_files</c> and <c>max_bytes</c> per camera, the oldest records going first (evicted, counted),
/// and by <c>min_free_mb</c> of free disk, below which nothing more is written (skipped, counted). Both
/// bounds hold across restarts: what is on disk is read back at start. <paramref name="settings"/> reads
/// the live settings, so a hot-reloaded bound applies with the next record; the folder is the one the
/// pipeline started with.
/// </summary>
internal sealed class Archive(Func<ArchiveSettings> settings, string line, string camera, long runId, string modelHash, ILogger log)
{
    /// <summary>The camera's folder.</summary>
    public string Root { get; } = Path.Combine(settings().Dir, camera);

    private sealed record Item(FrameMeta Meta, DecodedImage Image, FrameOutcome Outcome);
    private readonly record struct Entry(string Stem, long Bytes);
    // Wait mode, not DropWrite: with DropWrite, TryWrite reports success for a dropped item and
    // nothing would be counted. The writer never waits: a false TryWrite is the skip.
    private readonly Channel<Item> _queue = Channel.CreateBounded<Item>(new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.Wait });
    private readonly Lock _gate = new();
    private readonly LinkedList<Entry> _written = new(); // oldest first
    private readonly LogThrottle _skipLog = new(TimeSpan.FromSeconds(30));
    private long _bytes, _skipped, _evicted;

    /// <summary>Records not written: queue full, disk below the free-space floor, write errors.</summary>
    public long Skipped => Interlocked.Read(ref _skipped);

    /// <summary>Records deleted to stay within max_files and max_bytes.</summary>
    public long Evicted => Interlocked.Read(ref _evicted);

    public ArchiveStatus Status()
    {
        lock (_gate) return new ArchiveStatus(_written.Count, _bytes, Skipped, Evicted);
    }

    /// <summary>The newest records' stems (path without extension, relative to the camera's folder), newest first.</summary>
    public List<string> Newest(int count)
    {
        var list = new List<string>(count);
        lock (_gate)
        {
            for (var n = _written.Last; n is not null && list.Count < count; n = n.Previous) list.Add(Path.GetRelativePath(Root, n.Value.Stem));
        }
        return list;
    }

    public void Enqueue(FrameMeta meta, DecodedImage image, FrameOutcome o)
    {
        var item = new Item(meta, image.Clone(), o);
        if (_queue.Writer.TryWrite(item)) return;
        item.Image.Dispose();
        Skip($"frame {meta.Id}: the archive queue is full (the disk is slower than the fails)");
    }

    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            Load();
            Trim();
            await foreach (var item in _queue.Reader.ReadAllAsync(ct))
            {
                try
                {
                    Write(item);
                    Trim();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Skip($"frame {item.Meta.Id}: {e.Message}");
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>
    /// Reads back what is on disk, oldest first, so that the bounds hold across restarts. The index is
    /// rebuilt, not added to: a loop its supervisor restarts reads the same records again.
    /// </summary>
    private void Load()
    {
        var found = new List<Entry>();
        var files = Directory.Exists(Root) ? Directory.EnumerateFiles(Root, "*.json", SearchOption.AllDirectories) : [];
        foreach (string f in files)
        {
            string stem = f[..^".json".Length];
            found.Add(new Entry(stem, Size(f) + Size(stem + ".png") + Size(stem + "_heatmap.jpg")));
        }
        // <date>/<HHmmssfff>_<frame>_<verdict>: path order is capture order.
        found.Sort((a, b) => string.CompareOrdinal(a.Stem, b.Stem));
        lock (_gate)
        {
            _written.Clear();
            _bytes = 0;
            foreach (var e in found)
            {
                _written.AddLast(e);
                _bytes += e.Bytes;
            }
        }
    }

    private void Write(Item item)
    {
        var o = item.Outcome;
        byte[] png;
        using (item.Image) png = item.Image.EncodePng();
        string verdict = VerdictNames.Wire(o.Kind);
        var record = new ArchiveRecord(item.Meta.Id, runId, item.Meta.PartId, line, camera, item.Meta.CaptureUtc.ToUnixTimeMilliseconds(), verdict,
            o.Reject ?? true, float.IsFinite(o.Score) ? o.Score : null, float.IsFinite(o.Calibrated) ? o.Calibrated : null,
            o.Threshold, o.Recipe, o.ReferenceFrames, o.ReferenceRuns, modelHash);
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(record, WireJson.Default.ArchiveRecord);
        long bytes = png.Length + json.Length + (o.Heatmap?.Length ?? 0);
        var s = settings();
        Directory.CreateDirectory(Root);
        long free = new DriveInfo(Root).AvailableFreeSpace;
        if (free - bytes < s.MinFreeMb * 1024L * 1024L)
        {
            Skip($"frame {item.Meta.Id}: {free / (1024 * 1024)} MB free on the archive's disk, archive.min_free_mb is {s.MinFreeMb}");
            return;
        }
        string dir = Path.Combine(Root, item.Meta.CaptureUtc.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        string stem = Path.Combine(dir, $"{item.Meta.CaptureUtc:HHmmssfff}_{item.Meta.Id:D8}_{verdict}");
        File.WriteAllBytes(stem + ".png", png);
        if (o.Heatmap is { } h) File.WriteAllBytes(stem + "_heatmap.jpg", h);
        // The record last: a record on disk means its images are there too.
        File.WriteAllBytes(stem + ".json", json);
        lock (_gate)
        {
            _written.AddLast(new Entry(stem, bytes));
            _bytes += bytes;
        }
    }

    /// <summary>Evicts the oldest records until both max_files and max_bytes hold.</summary>
    private void Trim()
    {
        var s = settings();
        while (true)
        {
            Entry old;
            lock (_gate)
            {
                if (_written.Count == 0 || (_written.Count <= s.MaxFiles && _bytes <= s.MaxBytes)) return;
                old = _written.First!.Value;
                _written.RemoveFirst();
                _bytes -= old.Bytes;
            }
            foreach (string f in (string[])[old.Stem + ".json", old.Stem + ".png", old.Stem + "_heatmap.jpg"])
            {
                try { File.Delete(f); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log.LogWarning("Archive: {File} could not be deleted: {Error}", f, e.Message); }
            }
            Interlocked.Increment(ref _evicted);
        }
    }

    private void Skip(string why)
    {
        long n = Interlocked.Increment(ref _skipped);
        if (_skipLog.Allow(out long held)) log.LogWarning("Camera {Camera}: archive record skipped: {Why} ({Total} skipped so far; {Held} not logged since the last)", camera, why, n, held);
    }

    private static long Size(string path)
    {
        var f = new FileInfo(path);
        return f.Exists ? f.Length : 0;
    }
}
