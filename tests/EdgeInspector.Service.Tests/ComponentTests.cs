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
        for (int i = 1; i <= 5; i++) spool.TryAppend(M(i));
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
        reopened.TryAppend(M(6));
        Assert.Equal("t/6", new MessageSpool(tmp.Path, 100).Peek()!.Topic); // sequence continues
    }

    [Fact]
    public void When_full_the_oldest_go_first_and_are_counted()
    {
        using var tmp = new TempFolder();
        var spool = new MessageSpool(tmp.Path, 3);
        for (int i = 1; i <= 5; i++) spool.TryAppend(M(i));
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
        using var decoded = FrameDecoder.Decode(rgb);
        using var mat = OpenCvSharp.Cv2.ImDecode(decoded.EncodePng(), OpenCvSharp.ImreadModes.Unchanged);
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
        Assert.True(link.Counters.Queued <= 1024, $"{link.Counters.Queued} messages held in memory");
        Assert.Equal(3000, link.Counters.Queued + link.Counters.Spooled);
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
        Assert.Equal(0, link.Counters.Spooled);
        Assert.Equal(0, link.Counters.SpoolOverflow);
    }

    private static OutgoingMessage Numbered(int i, int size)
    {
        var payload = new byte[size];
        Array.Fill(payload, (byte)' ');
        Encoding.ASCII.GetBytes(i.ToString()).CopyTo(payload, 0);
        return new OutgoingMessage("t/verdict", payload);
    }

    private static int Number(Received m) => int.Parse(m.Text.Trim());

    private static async Task Until(Func<bool> done, string what, TimeSpan timeout)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!done())
        {
            if (sw.Elapsed > timeout) Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    private static void Balanced(LinkCounters c) =>
        Assert.True(c.Enqueued + c.Recovered == c.Delivered + c.Lost + c.Queued + c.Spooled, $"unbalanced: {c}");

    [Fact]
    public async Task A_full_disk_costs_only_the_oldest_messages_and_live_ones_flow_when_the_broker_returns()
    {
        using var tmp = new TempFolder();
        using var disk = new SmallDisk(Path.Combine(tmp.Path, "disk"), 1024 * 1024);
        using var broker = new Mosquitto(tmp.Path);
        await using var link = new MqttLink(Options(broker.Port, Path.Combine(disk.Path, "spool")));
        using var cts = new CancellationTokenSource();
        var loop = link.RunAsync(cts.Token); // the broker is down
        // 1,500 messages of 2 KB: three times what the disk holds.
        for (int i = 1; i <= 1500; i++) link.Enqueue(Numbered(i, 2048));
        await Until(() => link.Counters.Queued == 0, "every message out of memory", TimeSpan.FromSeconds(30));
        var c = link.Counters;
        Assert.True(c.SpoolOverflow > 0, $"nothing overflowed: {c}");
        Assert.Equal(0, c.SpoolWriteFailed); // room was made from the oldest every time
        Assert.InRange(c.Spooled, 50, 1499);
        Assert.Equal(1500, c.Spooled + c.SpoolOverflow);
        Balanced(c);
        int spooled = (int)c.Spooled;

        // The broker returns: what the disk kept goes first, in order, then live messages, at once.
        await broker.StartAsync();
        await using var probe = new Probe(broker.Port, "t/verdict");
        await probe.ConnectAsync();
        await Until(() => link.Counters.Connected, "the link to reconnect", TimeSpan.FromSeconds(30));
        for (int i = 1501; i <= 1550; i++) link.Enqueue(Numbered(i, 2048));
        await probe.WaitFor(p => p.Messages.Count >= spooled + 50, TimeSpan.FromSeconds(60), $"{spooled} spooled and 50 live messages");
        // The newest survived: a contiguous run ending at 1500, then the live ones.
        Assert.Equal(Enumerable.Range(1501 - spooled, spooled + 50), probe.Messages.Select(Number));
        Balanced(link.Counters);
        Assert.Equal(0, link.Counters.Spooled);
        cts.Cancel();
        await loop;
    }

    [Fact]
    public async Task The_spool_stops_growing_at_its_free_space_floor_and_a_disk_with_no_room_counts_what_it_could_not_keep()
    {
        using var tmp = new TempFolder();
        using var disk = new SmallDisk(Path.Combine(tmp.Path, "disk"), 1024 * 1024);
        using var broker = new Mosquitto(tmp.Path);
        await using var link = new MqttLink(Options(broker.Port, Path.Combine(disk.Path, "spool")) with { SpoolMinFreeBytes = 512 * 1024 });
        using var cts = new CancellationTokenSource();
        var loop = link.RunAsync(cts.Token);
        for (int i = 1; i <= 400; i++) link.Enqueue(Numbered(i, 2048));
        await Until(() => link.Counters.Queued == 0, "every message out of memory", TimeSpan.FromSeconds(30));
        var c = link.Counters;
        // At most the floor's worth of room is used (plus the one message written at the line).
        Assert.True(disk.Used <= 1024 * 1024 - 512 * 1024 + 8192, $"{disk.Used} bytes used on a 1 MiB disk with a 512 KiB floor");
        Assert.True(c.SpoolOverflow > 0 && c.Spooled > 0, c.ToString());
        Balanced(c);

        // Someone else fills the disk: with the spool emptied first, nothing can be kept, and it is counted.
        cts.Cancel();
        await loop;
        await using var full = new MqttLink(Options(broker.Port, Path.Combine(disk.Path, "spool2")));
        using (var filler = File.Create(Path.Combine(disk.Path, "filler")))
        {
            try
            {
                filler.Write(new byte[2 * 1024 * 1024]);
            }
            catch (IOException)
            {
                // full
            }
        }
        using var cts2 = new CancellationTokenSource();
        var loop2 = full.RunAsync(cts2.Token);
        for (int i = 1; i <= 20; i++) full.Enqueue(Numbered(i, 2048));
        await Until(() => full.Counters.Queued == 0, "every message out of memory", TimeSpan.FromSeconds(30));
        Assert.Equal(20, full.Counters.SpoolWriteFailed);
        Balanced(full.Counters);
        cts2.Cancel();
        await loop2;
    }

    [Fact]
    public async Task An_embedded_broker_with_credentials_refuses_clients_without_them()
    {
        int port = Ports.Free();
        await using var broker = await EmbeddedBroker.StartAsync(System.Net.IPAddress.Loopback, port, "line", "s3cret");
        async Task<string> Connect(string? user, string? password)
        {
            using var client = new MQTTnet.MqttClientFactory().CreateMqttClient();
            var b = new MQTTnet.MqttClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500);
            if (user is not null) b.WithCredentials(user, password);
            try
            {
                var r = await client.ConnectAsync(b.Build());
                return r.ResultCode.ToString();
            }
            catch (MQTTnet.Adapter.MqttConnectingFailedException e)
            {
                return e.Message;
            }
        }
        Assert.Contains("BadUserNameOrPassword", await Connect(null, null));
        Assert.Contains("BadUserNameOrPassword", await Connect("line", "wrong"));
        Assert.Equal("Success", await Connect("line", "s3cret"));
    }
}
