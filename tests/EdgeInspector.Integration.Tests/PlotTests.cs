using EdgeInspector.Imaging;
using OpenCvSharp;

namespace EdgeInspector.Integration.Tests;

/// <summary>The latency histogram the line bench writes: bars where the frames are, none where they are not.</summary>
public class PlotTests
{
    private static readonly Vec3b Bar = new(180, 120, 40), White = new(255, 255, 255);

    [Fact]
    public void The_latency_histogram_draws_a_bar_per_occupied_bin_with_a_log_scaled_height()
    {
        // 40 frames at 30 ms and one at 990 ms, in 25 ms bins: the axis runs to 1,000 ms over 640 px from x = 60,
        // so bin 25–50 ms spans x 76–91 and bin 975–1,000 ms x 684–699; the plot's floor is y = 370.
        double[] latencies = [.. Enumerable.Repeat(30.0, 40), 990];
        using var img = PlotRenderer.LatencyHistogram(latencies, 25, "test");
        Assert.Equal((420, 720), (img.Rows, img.Cols));
        Assert.Equal(Bar, img.At<Vec3b>(365, 84));   // the bulk's bin
        Assert.Equal(Bar, img.At<Vec3b>(60, 84));    // 40 frames: the full height (top at y = 50)
        Assert.Equal(Bar, img.At<Vec3b>(365, 688));  // the one slow frame's bin
        Assert.Equal(Bar, img.At<Vec3b>(320, 688));  // 1 frame: log10(2)/log10(41) of the height (top at y = 310)
        Assert.Equal(White, img.At<Vec3b>(300, 688));
        Assert.Equal(White, img.At<Vec3b>(365, 400)); // 500 ms: no frame there
        // p99 of 41 frames is the slow one: its red marker at x = 60 + 990/1000·640 = 693.
        Assert.Equal(new Vec3b(0, 0, 220), img.At<Vec3b>(200, 693));
    }

    [Theory]
    [InlineData(97.3, 2.5)]   // 97.3 / 40 = 2.4 ms: 2.5 ms bars
    [InlineData(990, 25)]     // 24.75 ms: 25
    [InlineData(1001, 50)]    // 25.025 ms: the next step, 50
    [InlineData(40, 1)]       // exactly 1 ms
    [InlineData(0.5, 1)]      // never under 1 ms
    [InlineData(30000, 1000)] // 750 ms: 1 s
    public void The_bar_width_draws_the_slowest_frame_within_about_forty_bars(double slowest, double bin)
    {
        Assert.Equal(bin, PlotRenderer.LatencyBinMs([slowest / 2, slowest]));
    }
}
