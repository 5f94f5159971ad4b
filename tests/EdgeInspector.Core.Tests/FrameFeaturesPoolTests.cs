using EdgeInspector.Core.Features;

namespace EdgeInspector.Core.Tests;

public sealed class FrameFeaturesPoolTests
{
    private static readonly FeatureLayout Layout = new(2, 2, [new ViewSpec("a", 1, 4)], 4);

    [Fact]
    public void Keeps_what_two_backbone_calls_make()
    {
        Assert.Equal(8, FrameFeaturesPool.ForCalls(Layout, 4).MaxRetained);
        Assert.Equal(24, FrameFeaturesPool.ForCalls(Layout, 4 * 3).MaxRetained); // four frames of three tiles
        Assert.Equal(2, FrameFeaturesPool.ForCalls(Layout, 0).MaxRetained);
    }

    [Fact]
    public void Frames_returned_beyond_the_bound_are_not_kept_and_the_kept_ones_are_reused()
    {
        var pool = new FrameFeaturesPool(Layout, 2);
        var held = new FrameFeatures[5];
        for (int i = 0; i < held.Length; i++) held[i] = pool.Rent();
        Assert.Equal(0, pool.Free);

        // A warm-up batch handed back at once: two stay, three go to the GC.
        foreach (var f in held) pool.Return(f);
        Assert.Equal(2, pool.Free);

        var again = new[] { pool.Rent(), pool.Rent(), pool.Rent() };
        int reused = 0;
        foreach (var f in again)
            if (Array.IndexOf(held, f) >= 0) reused++;
        Assert.Equal(2, reused);
        Assert.Equal(0, pool.Free);
    }

    [Fact]
    public void A_frame_of_another_layout_is_refused()
    {
        var pool = new FrameFeaturesPool(Layout, 2);
        var other = new FrameFeatures(new FeatureLayout(2, 2, [new ViewSpec("a", 1, 8)], 4));
        Assert.Throws<ArgumentException>(() => pool.Return(other));
        Assert.Equal(0, pool.Free);
    }
}
