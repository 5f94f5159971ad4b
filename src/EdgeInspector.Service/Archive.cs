using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using EdgeInspector.Core.Verdicts;
using Microsoft.Extensions.Logging;
using OpenCvSharp;

namespace EdgeInspector.Service;

/// <summary>
/// Keeps what a quality engineer needs to audit a verdict: the frame as scored (PNG), its heatmap
/// overlay (JPEG) and the verdict record (JSON), under <c>&lt;dir&gt;/&lt;camera&gt;/&lt;yyyy-MM-dd&gt;/</c>.
/// Written off the inference thread through a small bounded queue (full: the record is skipped and
/// counted); the oldest records go first once <c>max_files</c> is reached.
/// </summary>
internal sealed class Archive(LiveSettings initial, string camera, ILogger log)
{
    private sealed record Item(FrameMeta Meta, byte[] Png, byte[]? Heatmap, string Verdict, float Score, float Calibrated);
    private readonly Channel<Item> _queue = Channel.CreateBounded<Item>(new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Queue<string> _written = new();
    private LiveSettings _live = initial;
    public long Skipped;

    public void Update(LiveSettings live) => _live = live;

    public void Enqueue(FrameMeta meta, Mat image, FrameOutcome o)
    {
        Cv2.ImEncode(".png", image, out byte[] png);
        if (!_queue.Writer.TryWrite(new Item(meta, png, o.Heatmap, VerdictNames.Wire(o.Kind), o.Score, o.Calibrated))) Interlocked.Increment(ref Skipped);
    }

    public async Task RunAsync(CancellationToken ct)
    {
        string root = Path.Combine(_live.Settings.Archive.Dir, camera);
        try
        {
            if (Directory.Exists(root))
            {
                foreach (string f in Directory.EnumerateFiles(root, "*.json", SearchOption.AllDirectories).Order(StringComparer.Ordinal)) _written.Enqueue(f);
            }
            await foreach (var item in _queue.Reader.ReadAllAsync(ct))
            {
                try
                {
                    string dir = Path.Combine(root, item.Meta.CaptureUtc.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
                    Directory.CreateDirectory(dir);
                    string stem = Path.Combine(dir, $"{item.Meta.CaptureUtc:HHmmssfff}_{item.Meta.Id:D8}_{item.Verdict}");
                    await File.WriteAllBytesAsync(stem + ".png", item.Png, ct);
                    if (item.Heatmap is { } h) await File.WriteAllBytesAsync(stem + "_heatmap.jpg", h, ct);
                    var record = new Dictionary<string, object?>
                    {
                        ["frame_id"] = item.Meta.Id, ["part_id"] = item.Meta.PartId, ["camera"] = camera,
                        ["timestamp_ms"] = item.Meta.CaptureUtc.ToUnixTimeMilliseconds(), ["verdict"] = item.Verdict,
                        ["score"] = float.IsFinite(item.Score) ? item.Score : null, ["calibrated"] = float.IsFinite(item.Calibrated) ? item.Calibrated : null,
                    };
                    await File.WriteAllBytesAsync(stem + ".json", JsonSerializer.SerializeToUtf8Bytes(record), ct);
                    _written.Enqueue(stem + ".json");
                    while (_written.Count > _live.Settings.Archive.MaxFiles)
                    {
                        string old = _written.Dequeue();
                        string oldStem = old[..^".json".Length];
                        foreach (string f in new[] { old, oldStem + ".png", oldStem + "_heatmap.jpg" }) File.Delete(f);
                    }
                }
                catch (IOException e)
                {
                    Interlocked.Increment(ref Skipped);
                    log.LogWarning("Archive {Root}: {Error}", root, e.Message);
                }
            }
        }
        catch (OperationCanceledException) { }
    }
}
