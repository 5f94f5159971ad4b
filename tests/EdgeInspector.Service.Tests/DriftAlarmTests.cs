using EdgeInspector.Integration.Tests;
using OpenCvSharp;
using Xunit.Abstractions;

namespace EdgeInspector.Service.Tests;

/// <summary>
/// Drift alarms end to end: the service as a process replays real good parts, then the same parts through
/// a dirty lens (blurred), and the alarm rises on the alarm topic; an unchanged replay raises none.
/// </summary>
public class DriftAlarmTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(180);

    private const int Half = 32;

    /// <summary>
    /// 32 good bottles, then the same 32 again through a dirty lens (<paramref name="blur"/>: Gaussian blur
    /// of that sigma, 0 for none), frames 33–64. The first half holds the warm-up (batch 8, about 12 frames
    /// answered warming_up), 8 parts let by to settle and the 8 of the baseline.
    /// </summary>
    private static string Line(string root, double blur)
    {
        string dir = Path.Combine(root, "line");
        Directory.CreateDirectory(dir);
        var goods = Directory.GetFiles(Shared.Data("mvtec_ad/bottle/train/good"), "*.png").Order().Take(Half).ToList();
        for (int i = 0; i < 2 * Half; i++)
        {
            using var img = Cv2.ImRead(goods[i % Half], ImreadModes.Color);
            if (i >= Half && blur > 0) Cv2.GaussianBlur(img, img, new Size(0, 0), blur);
            Cv2.ImWrite(Path.Combine(dir, $"{i:D3}.png"), img);
        }
        return dir;
    }

    private async Task<(List<Received> Alarms, List<Received> Statuses, List<Received> Verdicts)> Run(double blur)
    {
        using var tmp = new TempFolder();
        using var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        await using var probe = new Probe(broker.Port, "edgeinspector/testline/cam1/#");
        await probe.ConnectAsync();
        // Paced, so that the warm-up takes about the same number of frames whatever the machine's speed: at
        // full speed a faster engine lets more frames arrive during the warm-up, and too few good parts are
        // left to settle and set the baseline.
        string yaml = Yaml.Config(Yaml.Replay(Line(tmp.Path, blur), fps: 8, loop: false), Yaml.Broker(broker.Port), tmp.Path,
            // A window of 8 parts keeps the test short; its medians move by about one z early in a line, while the
            // calibration still fills (1.03 on the unchanged replay), so the shift asked for is 2 (a blurred lens moves it by 7 or more).
            "drift:\n  window: 8\n  reject_rate_rise: 0.25\n  score_shift: 2.0\n");
        using var service = new ServiceRun(tmp.Path, yaml);
        await probe.WaitFor(p => p.On("/verdict").Count >= 2 * Half, Long, $"{2 * Half} verdicts", service.Process);
        await Task.Delay(1500); // the last status after the last verdict
        return (probe.On("/alarm"), probe.On("/status"), probe.On("/verdict"));
    }

    [Fact]
    public async Task A_dirty_lens_in_the_second_half_raises_the_alarm_and_an_unchanged_line_does_not()
    {
        var (alarms, statuses, verdicts) = await Run(blur: 3);
        var raised = alarms.Where(a => a.Payload.Length > 0).Select(a => a.Json).ToList();
        Assert.NotEmpty(raised);
        var first = raised[0];
        Assert.True(first.GetProperty("active").GetBoolean());
        Assert.NotEmpty(first.GetProperty("kinds").EnumerateArray());
        // Raised by the blurred parts (frames 33 on), not before.
        Assert.InRange(first.GetProperty("frame_id").GetInt64(), Half + 1, 2 * Half);
        Assert.Contains(statuses, s => s.Json.GetProperty("drift").GetProperty("active").GetBoolean());
        string Summary(List<Received> v) => string.Join(" ", v.Select(m => m.Json.GetProperty("verdict").GetString()![..1]));
        output.WriteLine($"the same parts blurred (sigma 3) from frame {Half + 1}: first alarm at frame {first.GetProperty("frame_id").GetInt64()}: {first}");
        output.WriteLine($"verdicts: {Summary(verdicts)}");

        var (quiet, quietStatuses, quietVerdicts) = await Run(blur: 0);
        Assert.Empty(quiet);
        var last = quietStatuses.Last().Json.GetProperty("drift");
        Assert.True(last.GetProperty("baseline_set").GetBoolean()); // watched, and nothing moved
        Assert.DoesNotContain(quietStatuses, s => s.Json.GetProperty("drift").GetProperty("active").GetBoolean());
        output.WriteLine($"unchanged: no alarm; last drift status {last}");
        output.WriteLine($"verdicts: {Summary(quietVerdicts)}");
    }
}
