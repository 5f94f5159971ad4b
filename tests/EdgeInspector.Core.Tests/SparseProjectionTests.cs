using EdgeInspector.Core.Features;

namespace EdgeInspector.Core.Tests;

public sealed class SparseProjectionTests
{
    private static FrameFeatures Frame(FeatureLayout layout, int seed)
    {
        var rng = new Random(seed);
        var f = new FrameFeatures(layout);
        foreach (var v in f.Views)
            for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return f;
    }

    [Fact]
    public void Each_output_of_a_four_wide_view_is_two_of_its_inputs_with_signs()
    {
        // d = 4: √4 = 2 inputs per output, each weighted ±√(4 / (2 outputs × 2 inputs)) = ±1.
        var layout = new FeatureLayout(1, 2, [new ViewSpec("a", 1, 4)], 1);
        var projection = new SparseProjection(layout, 2, seed: 3);
        var f = new FrameFeatures(layout);
        float[] x = [1, 10, 100, 1000];
        x.CopyTo(f.Views[0], 4); // patch 1; patch 0 stays zero
        var sums = new HashSet<float>();
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                if (i != j)
                    foreach (float a in new[] { -x[i], x[i] })
                        foreach (float b in new[] { -x[j], x[j] }) sums.Add(a + b);
        var all = new float[2 * 2];
        projection.ProjectAll(f, all);
        Assert.Equal(0f, all[0]);
        Assert.Equal(0f, all[1]);
        Assert.Contains(all[2], sums);
        Assert.Contains(all[3], sums);
    }

    [Theory]
    [InlineData(24, 128, 5)]   // the engine's selection: three blocks of eight a view
    [InlineData(5, 19, 7)]     // no whole block: the remainder alone
    [InlineData(11, 64, 33)]   // a block and a remainder
    public void Projecting_every_patch_at_once_gives_each_patch_projected_alone_to_the_bit(int dimsPerView, int d1, int d2)
    {
        var layout = new FeatureLayout(7, 9, [new ViewSpec("a", 1, d1), new ViewSpec("a", 3, d1), new ViewSpec("b", 1, d2)], 1);
        var projection = new SparseProjection(layout, dimsPerView, seed: dimsPerView);
        var f = Frame(layout, d1 + d2);
        int pd = projection.OutputDim;
        Assert.Equal(3 * dimsPerView, pd);
        var all = new float[layout.Patches * pd];
        projection.ProjectAll(f, all);
        var one = new float[pd];
        for (int q = 0; q < layout.Patches; q++)
        {
            projection.Project(f, q, one);
            for (int o = 0; o < pd; o++) Assert.Equal(BitConverter.SingleToInt32Bits(one[o]), BitConverter.SingleToInt32Bits(all[q * pd + o]));
        }
    }

    [Fact]
    public void Squared_lengths_are_kept_on_average()
    {
        // Scaled so that E‖Πx‖² = Σ_v ‖x_v‖²: over 64 random patches the ratio of the sums is near 1.
        var layout = new FeatureLayout(8, 8, [new ViewSpec("a", 1, 128), new ViewSpec("b", 1, 64)], 1);
        var projection = new SparseProjection(layout, 24, seed: 1);
        var f = Frame(layout, 2);
        var all = new float[layout.Patches * projection.OutputDim];
        projection.ProjectAll(f, all);
        double projected = all.Sum(v => (double)v * v);
        double original = f.Views.Sum(v => v.Sum(x => (double)x * x));
        Assert.InRange(projected / original, 0.8, 1.2);
    }

    [Fact]
    public void A_frame_of_another_layout_is_refused_with_the_view_named()
    {
        var layout = new FeatureLayout(2, 2, [new ViewSpec("a", 1, 16)], 1);
        var other = new FeatureLayout(2, 2, [new ViewSpec("a", 1, 12)], 1);
        var projection = new SparseProjection(layout, 4, seed: 1);
        var e = Assert.Throws<ArgumentException>(() => projection.ProjectAll(new FrameFeatures(other), new float[16]));
        Assert.Contains("View 0 is 12 wide", e.Message);
    }
}
