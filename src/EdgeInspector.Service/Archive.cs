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
/// queue: when full, the record is skipped and counted (status: archive_skipped); the oldest records
/// go first once <c>max_files</c> is reached. <paramref name="settings"/> reads the live settings, so a
/// hot-reloaded <c>max_files</c> applies at once. The record holds what the verdict was decided with
/// (threshold, recipe, model) and the reference frames that scored the part.
/// </summary>
internal sealed class Archive(Func<ArchiveSettings> settings, string camera, string modelHash, ILogger log)
{
    private sealed record Item(FrameMeta Meta, DecodedImage Image, FrameOutcome Outcome);
    // Wait mode, not DropWrite: with DropWrite, TryWrite reports success for a dropped item and
    // nothing would be counted. The writer never waits: a false TryWrite is the skip.
    private readonly Channel<Item> _queue = Channel.CreateBounded<Item>(new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.Wait });
    private readonly Queue<string> _written = new();
    public long Skipped;

    public void Enqueue(FrameMeta meta, DecodedImage image, FrameOutcome o)
    {
        var item = new Item(meta, image.Clone(), o);
        if (_queue.Writer.TryWrite(item)) return;
        item.Image.Dispose();
        Interlocked.Increment(ref Skipped);
    }

    public async Task RunAsync(CancellationToken ct)
    {
        string root = Path.Combine(settings().Dir, camera);
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
                    var o = item.Outcome;
                    string verdict = VerdictNames.Wire(o.Kind);
                    string stem = Path.Combine(dir, $"{item.Meta.CaptureUtc:HHmmssfff}_{item.Meta.Id:D8}_{verdict}");
                    byte[] png;
                    using (item.Image) png = item.Image.EncodePng();
                    await File.WriteAllBytesAsync(stem + ".png", png, ct);
                    if (o.Heatmap is { } h) await File.WriteAllBytesAsync(stem + "_heatmap.jpg", h, ct);
                    var record = new ArchiveRecord(item.Meta.Id, item.Meta.PartId, camera, item.Meta.CaptureUtc.ToUnixTimeMilliseconds(), verdict,
                        float.IsFinite(o.Score) ? o.Score : null, float.IsFinite(o.Calibrated) ? o.Calibrated : null,
                        o.Threshold, o.Recipe, o.ReferenceFrames, modelHash);
                    await File.WriteAllBytesAsync(stem + ".json", JsonSerializer.SerializeToUtf8Bytes(record, WireJson.Default.ArchiveRecord), ct);
                    _written.Enqueue(stem + ".json");
                    while (_written.Count > settings().MaxFiles)
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
