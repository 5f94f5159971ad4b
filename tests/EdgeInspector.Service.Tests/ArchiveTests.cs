using EdgeInspector.Configuration;
using EdgeInspector.Core.Verdicts;
using EdgeInspector.Imaging;
using EdgeInspector.Integration.Tests;
using Xunit.Abstractions;

namespace EdgeInspector.Service.Tests;

/// <summary>The archive under its bounds: records, bytes and a free-space floor, on real files and a real small disk.</summary>
public class ArchiveTests(ITestOutputHelper output)
{
    private static DecodedImage Bottle(int i) =>
        DecodedImage.FromFile(Directory.GetFiles(Shared.Data("mvtec_ad/bottle/train/good"), "*.png").Order().ElementAt(i));

    /// <summary>Archives <paramref name="count"/> fails (frame ids from <paramref name="first"/>) and waits until the archive wrote or skipped them all.</summary>
    private static async Task Archive(Archive archive, int first, int count)
    {
        long before = archive.Status().Records + archive.Evicted + archive.Skipped;
        for (int i = 0; i < count; i++)
        {
            using var image = Bottle(i % 4);
            var meta = new FrameMeta(first + i, $"P{first + i}", DateTimeOffset.UtcNow.AddMilliseconds(i), 0);
            archive.Enqueue(meta, image, new FrameOutcome { Kind = VerdictKind.Fail, Score = 1, Calibrated = 5, Heatmap = new byte[2000] });
            await Task.Delay(30); // the queue holds 16: these tests are about the bounds, not the queue
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (archive.Status().Records + archive.Evicted + archive.Skipped < before + count && sw.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(20);
    }

    /// <summary>Runs the archive's loop (as its pipeline would) while <paramref name="work"/> runs, then stops it.</summary>
    private static async Task Running(Archive archive, Func<Task> work)
    {
        using var cts = new CancellationTokenSource();
        var loop = archive.RunAsync(cts.Token);
        await work();
        cts.Cancel();
        await loop;
    }

    private static long OnDisk(string root) => Directory.Exists(root) ? Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) : 0;

    [Fact]
    public async Task The_oldest_records_go_first_to_stay_within_max_bytes_and_the_bound_holds_across_a_restart()
    {
        using var tmp = new TempFolder();
        var settings = new ArchiveSettings { Dir = tmp.Path, Save = "fails", MaxFiles = 1000, MaxBytes = long.MaxValue, MinFreeMb = 0 };
        var log = new ListLogger();
        var first = new Archive(() => settings, "line1", "cam1", 1, new string('0', 64), log);
        await Running(first, () => Archive(first, 1, 3));
        var three = first.Status();
        Assert.Equal(3, three.Records);
        Assert.Equal(OnDisk(Path.Combine(tmp.Path, "cam1")), three.Bytes); // the index counts what is on disk
        long perRecord = three.Bytes / 3;
        // A loop its supervisor restarts reads the folder again: the index is rebuilt, not doubled.
        await Running(first, () => Task.Delay(200));
        Assert.Equal(three, first.Status());

        // A restart reads the archive back, and a bound of ~5 records evicts the oldest of 8 as it goes.
        settings = settings with { MaxBytes = perRecord * 5 + perRecord / 2 };
        var second = new Archive(() => settings, "line1", "cam1", 1, new string('0', 64), log);
        await Running(second, () => Archive(second, 4, 5));
        var s = second.Status();
        Assert.Equal(5, s.Records);
        Assert.Equal(3, s.Evicted);
        Assert.True(s.Bytes <= settings.MaxBytes, $"{s.Bytes} > max_bytes {settings.MaxBytes}");
        Assert.Equal(OnDisk(Path.Combine(tmp.Path, "cam1")), s.Bytes);
        // The oldest went: frames 4..8 remain, each with its frame, heatmap and record.
        var kept = Directory.GetFiles(Path.Combine(tmp.Path, "cam1"), "*.json", SearchOption.AllDirectories).Select(f => int.Parse(Path.GetFileName(f).Split('_')[1])).Order();
        Assert.Equal([4, 5, 6, 7, 8], kept);
        Assert.Equal(15, Directory.GetFiles(Path.Combine(tmp.Path, "cam1"), "*", SearchOption.AllDirectories).Length);
        // The newest first, as the live view lists them.
        Assert.EndsWith("_00000008_fail", second.Newest(2)[0]);

        // A tighter bound applies at the next start, before anything new is written.
        settings = settings with { MaxBytes = perRecord * 2 + perRecord / 2 };
        var third = new Archive(() => settings, "line1", "cam1", 1, new string('0', 64), log);
        await Running(third, async () =>
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (third.Status().Records != 2 && sw.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
        });
        Assert.Equal(2, third.Status().Records);
        Assert.Equal(3, third.Evicted);
        output.WriteLine($"{perRecord:N0} bytes per record; max_bytes {settings.MaxBytes:N0}: kept {third.Status().Records}, evicted {third.Evicted} at start");
    }

    [Fact]
    public async Task Below_the_free_space_floor_nothing_more_is_written_and_each_skip_is_counted()
    {
        using var tmp = new TempFolder();
        // A real 6 MB disk; the floor at 5 MB leaves room for a few records of ~0.3 MB, not for six.
        using var disk = new SmallDisk(Path.Combine(tmp.Path, "disk"), 6L * 1024 * 1024);
        var settings = new ArchiveSettings { Dir = disk.Path, Save = "fails", MaxFiles = 1000, MaxBytes = long.MaxValue, MinFreeMb = 5 };
        var log = new ListLogger();
        var archive = new Archive(() => settings, "line1", "cam1", 1, new string('0', 64), log);
        await Running(archive, () => Archive(archive, 1, 6));
        var s = archive.Status();
        Assert.Equal(6, s.Records + s.Skipped);
        Assert.InRange(s.Records, 1, 5);
        long free = new DriveInfo(disk.Path).AvailableFreeSpace;
        Assert.True(free >= settings.MinFreeMb * 1024L * 1024L, $"{free} bytes free, below the floor");
        Assert.Contains(log.Lines, l => l.Contains("archive record skipped") && l.Contains("archive.min_free_mb is 5"));
        output.WriteLine($"6 MB disk, floor 5 MB: {s.Records} written, {s.Skipped} skipped, {free:N0} bytes free");
    }
}
