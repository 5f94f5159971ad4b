using System.Text;
using EdgeInspector.Cameras;
using EdgeInspector.Integration.Tests;
using EdgeInspector.Mqtt;

namespace EdgeInspector.Service.Tests;

public class SpoolTests
{
    private static OutgoingMessage M(int i) => new($"t/{i}", Encoding.UTF8.GetBytes($"payload {i}"), i % 2 == 0, [new("frame_id", i.ToString())]);

    [Fact]
    public void Keeps_order_across_a_restart_and_removes_only_what_was_acknowledged()
    {
        using var tmp = new TempFolder();
        var spool = new MessageSpool(tmp.Path, 100);
        for (int i = 1; i <= 5; i++) spool.Append(M(i));
        Assert.Equal("t/1", spool.Peek()!.Topic);
        spool.Remove();
        // A torn write from a crash is discarded on open; the rest is delivered in order.
        File.WriteAllText(Path.Combine(tmp.Path, "0000000000000099.msg.tmp"), "half");
        var reopened = new MessageSpool(tmp.Path, 100);
        Assert.Equal(4, reopened.Count);
        var seen = new List<OutgoingMessage>();
        while (reopened.Peek() is { } m)
        {
            seen.Add(m);
            reopened.Remove();
        }
        Assert.Equal(["t/2", "t/3", "t/4", "t/5"], seen.Select(m => m.Topic));
        Assert.Equal("payload 4", Encoding.UTF8.GetString(seen[2].Payload));
        Assert.True(seen[2].Retain);
        Assert.Equal("4", seen[2].UserProperties!.Single().Value);
        Assert.Empty(Directory.GetFiles(tmp.Path));
        reopened.Append(M(6));
        Assert.Equal("t/6", new MessageSpool(tmp.Path, 100).Peek()!.Topic); // sequence continues
    }

    [Fact]
    public void When_full_the_oldest_go_first_and_are_counted()
    {
        using var tmp = new TempFolder();
        var spool = new MessageSpool(tmp.Path, 3);
        for (int i = 1; i <= 5; i++) spool.Append(M(i));
        Assert.Equal(3, spool.Count);
        Assert.Equal(2, spool.Overflow);
        Assert.Equal("t/3", spool.Peek()!.Topic);
    }
}

public class SourceTests
{
    [Fact]
    public async Task Replay_paces_names_parts_and_shuffles_the_same_way_every_time()
    {
        using var tmp = new TempFolder();
        Directory.CreateDirectory(Path.Combine(tmp.Path, "good"));
        for (int i = 0; i < 6; i++) File.WriteAllText(Path.Combine(tmp.Path, "good", $"{i:D3}.png"), "x");
        File.WriteAllText(Path.Combine(tmp.Path, "notes.txt"), "not an image");
        async Task<List<string>> Run(int? seed)
        {
            await using var src = new FolderReplaySource(tmp.Path, fps: 0, loop: false, seed);
            await src.OpenAsync(CancellationToken.None);
            var parts = new List<string>();
            while (await src.ReadAsync(CancellationToken.None) is { } f)
            {
                using (f) parts.Add(f.PartId!);
            }
            return parts;
        }
        Assert.Equal(["good/000", "good/001", "good/002", "good/003", "good/004", "good/005"], await Run(null));
        var a = await Run(7);
        Assert.Equal(a, await Run(7));
        Assert.NotEqual(await Run(null), a);
        Assert.Equal((await Run(null)).Order(), a.Order());

        await using var paced = new FolderReplaySource(tmp.Path, fps: 20, loop: true);
        await paced.OpenAsync(CancellationToken.None);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 11; i++) (await paced.ReadAsync(CancellationToken.None))!.Dispose(); // loops past the 6 files
        Assert.True(sw.ElapsedMilliseconds >= 450, $"11 frames at 20 fps took {sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task Empty_or_missing_replay_folders_are_named()
    {
        using var tmp = new TempFolder();
        var e = await Assert.ThrowsAsync<FrameSourceException>(() => new FolderReplaySource(tmp.Path, 1, true).OpenAsync(CancellationToken.None));
        Assert.Contains(tmp.Path, e.Message);
        Assert.Contains("no images", e.Message);
    }

    [Fact]
    public async Task GigE_fake_camera_opened_by_address_delivers_mono8_frames()
    {
        using var camera = new FakeCamera();
        await camera.StartAsync();
        var counters = new SourceCounters();
        await using var src = new AravisSource(new GigeOptions("127.0.0.1", ExposureUs: 2000, GainDb: 1, "Mono8", "free_run", "Line1", FrameRate: 20, TimeoutMs: 2000), counters);
        await src.OpenAsync(CancellationToken.None);
        Assert.Contains(camera.Serial, src.Description);
        for (int i = 0; i < 3; i++)
        {
            using var f = (await src.ReadAsync(CancellationToken.None))!;
            Assert.Equal(PixelLayout.Mono8, f.Layout);
            Assert.True(f.Width > 0 && f.Height > 0);
            Assert.Equal(f.Width * f.Height, f.RawPixels.Length);
            using var mat = FrameDecoder.Decode(f);
            Assert.Equal((f.Width, f.Height), (mat.Width, mat.Height));
        }
        Assert.Equal(3, counters.Frames);
    }

    [Fact]
    public async Task GigE_software_trigger_paces_frames()
    {
        using var camera = new FakeCamera();
        await camera.StartAsync();
        var counters = new SourceCounters();
        await using var src = new AravisSource(new GigeOptions("127.0.0.1", null, null, "", "software", "Line1", FrameRate: 10, TimeoutMs: 2000), counters);
        await src.OpenAsync(CancellationToken.None);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 5; i++) (await src.ReadAsync(CancellationToken.None))!.Dispose();
        Assert.True(sw.ElapsedMilliseconds >= 350, $"5 software-triggered frames at 10 fps took {sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task GigE_camera_that_is_not_there_fails_with_its_name()
    {
        // 127.0.0.2 is loopback too, and nothing answers GVCP there.
        var src = new AravisSource(new GigeOptions("127.0.0.2", null, null, "", "free_run", "Line1", 5, 1000), new SourceCounters());
        var e = await Assert.ThrowsAsync<FrameSourceException>(() => src.OpenAsync(CancellationToken.None));
        Assert.Contains("127.0.0.2", e.Message);
        await src.DisposeAsync();
    }

    [Fact]
    public async Task Video_file_through_VideoCapture_delivers_its_frames_then_ends()
    {
        using var tmp = new TempFolder();
        string file = Path.Combine(tmp.Path, "line.avi");
        using (var writer = new OpenCvSharp.VideoWriter(file, OpenCvSharp.FourCC.MJPG, 10, new OpenCvSharp.Size(64, 48)))
        {
            Assert.True(writer.IsOpened(), "OpenCV cannot write MJPG/AVI here");
            for (int i = 0; i < 5; i++)
            {
                using var m = new OpenCvSharp.Mat(48, 64, OpenCvSharp.MatType.CV_8UC3, new OpenCvSharp.Scalar(i * 40, 100, 200));
                writer.Write(m);
            }
        }
        await using var src = new VideoCaptureSource(file);
        await src.OpenAsync(CancellationToken.None);
        int n = 0;
        while (await src.ReadAsync(CancellationToken.None) is { } f)
        {
            using (f)
            {
                Assert.Equal(PixelLayout.Bgr8, f.Layout);
                Assert.Equal((64, 48), (f.Width, f.Height));
                n++;
            }
        }
        Assert.Equal(5, n);
        var missing = new VideoCaptureSource(Path.Combine(tmp.Path, "nope.avi"));
        Assert.Contains("nope.avi", (await Assert.ThrowsAsync<FrameSourceException>(() => missing.OpenAsync(CancellationToken.None))).Message);
        await missing.DisposeAsync();
    }

    [Fact]
    public void Raw_frames_of_an_unknown_pixel_format_are_refused_by_name()
    {
        using var f = CapturedFrame.Raw(new byte[12], 2, 2, (PixelLayout)0x01100007, "cam frame 9", null, 0, DateTimeOffset.UtcNow);
        var e = Assert.Throws<EdgeInspector.Imaging.ImageDecodeException>(() => FrameDecoder.Decode(f));
        Assert.Contains("cam frame 9", e.Message);
        Assert.Contains("0x01100007", e.Message);
        using var short_ = CapturedFrame.Raw(new byte[3], 2, 2, PixelLayout.Mono8, "cam frame 10", null, 0, DateTimeOffset.UtcNow);
        Assert.Contains("cannot hold", Assert.Throws<EdgeInspector.Imaging.ImageDecodeException>(() => FrameDecoder.Decode(short_)).Message);
        using var rgb = CapturedFrame.Raw([10, 20, 30, 10, 20, 30, 10, 20, 30, 10, 20, 30], 2, 2, PixelLayout.Rgb8, "rgb", null, 0, DateTimeOffset.UtcNow);
        using var mat = FrameDecoder.Decode(rgb);
        Assert.Equal(30, mat.At<OpenCvSharp.Vec3b>(0, 0).Item0); // BGR order after conversion
        Assert.Equal(10, mat.At<OpenCvSharp.Vec3b>(1, 1).Item2);
    }
}

public class MqttLinkTests
{
    private static MqttLinkOptions Options(int port, string spool) => new(
        "127.0.0.1", port, "link-test", null, null, false, null, false, "t/status", Encoding.UTF8.GetBytes("offline"), [], spool, 100_000);

    [Fact]
    public async Task Memory_is_bounded_overflow_goes_to_disk_and_everything_arrives_in_order()
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        string spool = Path.Combine(tmp.Path, "spool");
        await using var link = new MqttLink(Options(broker.Port, spool));
        // The broker is not running yet and the delivery loop not started: 3,000 verdicts pile up.
        for (int i = 1; i <= 3000; i++) link.Enqueue(new OutgoingMessage("t/verdict", Encoding.UTF8.GetBytes(i.ToString())));
        Assert.True(link.Queued <= 1024, $"{link.Queued} messages held in memory");
        Assert.Equal(3000, link.Queued + link.Spooled);
        Assert.True(Directory.GetFiles(spool, "*.msg").Length >= 3000 - 1024);

        await broker.StartAsync();
        await using var probe = new Probe(broker.Port, "t/verdict");
        await probe.ConnectAsync();
        using var cts = new CancellationTokenSource();
        var loop = link.RunAsync(cts.Token);
        await probe.WaitFor(p => p.Messages.Count >= 3000, TimeSpan.FromSeconds(60), "3000 messages");
        cts.Cancel();
        await loop;
        Assert.Equal(Enumerable.Range(1, 3000).Select(i => i.ToString()), probe.Messages.Select(m => m.Text));
        Assert.Equal(0, link.Spooled);
        Assert.Equal(0, link.SpoolOverflow);
    }
}
