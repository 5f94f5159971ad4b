using EdgeInspector.Integration.Tests;

namespace EdgeInspector.Service.Tests;

/// <summary>Frame ids that go on across restarts, kept on disk a block at a time, and what a bad file does.</summary>
public sealed class FrameCounterTests
{
    [Fact]
    public void Ids_go_on_after_a_restart_past_the_block_the_last_run_reserved()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "line1", "cam1.frames");
        var first = new FrameCounter(path);
        Assert.Equal([1L, 2, 3], new[] { first.Next(), first.Next(), first.Next() });
        // The block is reserved before the first frame: a crash now loses no id to a repeat.
        Assert.Equal("10001", File.ReadAllText(path).Trim());

        var second = new FrameCounter(path); // a restart: the rest of the first block is skipped
        Assert.Equal(10_001, second.First);
        Assert.Equal(10_001, second.Next());
        Assert.Equal("20001", File.ReadAllText(path).Trim());
        // Past its block, the next one is reserved as the first id beyond it is handed out.
        for (int i = 1; i < FrameCounter.Block; i++) second.Next();
        Assert.Equal("20001", File.ReadAllText(path).Trim());
        Assert.Equal(20_001, second.Next());
        Assert.Equal("30002", File.ReadAllText(path).Trim());
        Assert.Equal(30_002, new FrameCounter(path).First);
    }

    [Fact]
    public void Without_a_file_ids_start_at_1_and_nothing_is_written()
    {
        var counter = new FrameCounter();
        Assert.Equal(1, counter.First);
        Assert.Equal([1L, 2], new[] { counter.Next(), counter.Next() });
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-5")]
    [InlineData("")]
    public void A_file_that_is_not_a_frame_id_starts_over_at_1_and_is_replaced(string text)
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "cam1.frames");
        File.WriteAllText(path, text);
        var counter = new FrameCounter(path);
        Assert.Equal(1, counter.Next());
        Assert.Equal("10001", File.ReadAllText(path).Trim());
    }

    [Fact]
    public void A_file_that_cannot_be_written_leaves_the_ids_going_on_in_memory()
    {
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "cam1.frames");
        Directory.CreateDirectory(path); // a folder where the file should be: neither read nor written
        var counter = new FrameCounter(path);
        Assert.Equal([1L, 2], new[] { counter.Next(), counter.Next() });
        for (int i = 2; i < FrameCounter.Block + 5; i++) counter.Next();
        Assert.Equal(FrameCounter.Block + 6, counter.Next());
        Assert.False(File.Exists(path + ".tmp")); // no partial write left beside it
    }
}
