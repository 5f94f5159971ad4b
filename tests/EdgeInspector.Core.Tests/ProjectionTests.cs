using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Tests;

public sealed class ProjectionTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(5, 33, 7)]
    [InlineData(9, 128, 64)]
    [InlineData(13, 31, 17)]
    public void Gemm_matches_the_plain_loop(int nq, int n, int d)
    {
        var rng = new Random(nq * n + d);
        var q = Enumerable.Range(0, nq * d).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var r = Enumerable.Range(0, n * d).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var packed = PackedPanels.Pack(r, d);
        var fast = new float[nq * n];
        var plain = new float[nq * n];
        Gemm.Multiply(q, packed, fast);
        Gemm.MultiplyScalar(q, packed, plain);
        for (int i = 0; i < nq; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double dot = 0;
                for (int k = 0; k < d; k++) dot += q[i * d + k] * r[j * d + k];
                Assert.Equal(dot, plain[i * n + j], 3);
                Assert.Equal(plain[i * n + j], fast[i * n + j], 3);
            }
        }
    }

    [Fact]
    public void Projecting_before_the_pooling_gives_the_views_projected_after_it()
    {
        // The plain twin: full-width views (aligned, layer-normalised, pooled, unit rows), then projected.
        // Alignment, layer norm, pooling and the projection are linear, and both end with a unit row, so the
        // fused path must agree up to float rounding. Tap "a" (200 channels on an 8x8 grid) is projected to
        // 64 at degrees 1, 3 and 5; tap "b" (300 channels on 4x4, aligned up) at 3; tap "c" (32) passes through.
        var views = new List<ViewSpec> { new("a", 1, 200), new("a", 3, 200), new("a", 5, 200), new("b", 3, 300), new("c", 1, 32) };
        var layout = new FeatureLayout(8, 8, views, 300);
        var projector = new ViewProjector(layout, 64, 7);
        var rng = new Random(6);
        float[] Tap(int c, int hw) => [.. Enumerable.Range(0, c * hw).Select(_ => (float)rng.NextDouble() * 2 - 0.5f)];
        TapTensor[] taps = [new(Tap(200, 64), 200, 8, 8), new(Tap(300, 16), 300, 4, 4), new(Tap(32, 64), 32, 8, 8)];
        var full = new FrameFeatures(layout);
        new ViewBuilder(layout, ["a", "b", "c"], "b").Build(taps, full);
        var twin = new FrameFeatures(projector.Target);
        projector.Project(full, twin);
        var fused = new FrameFeatures(projector.Target);
        new ViewBuilder(layout, ["a", "b", "c"], "b", projector).Build(taps, fused);
        Assert.Equal(twin.Global, fused.Global);
        for (int v = 0; v < views.Count; v++)
        {
            Assert.Equal(twin.Views[v].Length, fused.Views[v].Length);
            for (int i = 0; i < twin.Views[v].Length; i++) Assert.True(Math.Abs(twin.Views[v][i] - fused.Views[v][i]) < 2e-5f, $"view {views[v]}, element {i}: {twin.Views[v][i]} against {fused.Views[v][i]}");
        }
        Assert.Equal(twin.Views[4], fused.Views[4]); // the pass-through view is the same path exactly
        Assert.Throws<ArgumentException>(() => new ViewBuilder(new FeatureLayout(8, 8, views, 300), ["a", "b", "c"], "b", projector));
    }

    [Fact]
    public void Projected_views_are_unit_rows_and_keep_distances_roughly()
    {
        var layout = new FeatureLayout(4, 4, [new ViewSpec("t", 1, 512), new ViewSpec("u", 1, 8)], 1);
        var projector = new ViewProjector(layout, 128, 3);
        Assert.Equal(128, projector.Target.Views[0].Dim);
        Assert.Equal(8, projector.Target.Views[1].Dim); // narrower views pass through
        var rng = new Random(4);
        var src = new FrameFeatures(layout);
        for (int v = 0; v < 2; v++)
        {
            int d = layout.Views[v].Dim;
            for (int q = 0; q < 16; q++)
            {
                var row = src.Views[v].AsSpan(q * d, d);
                for (int k = 0; k < d; k++) row[k] = (float)rng.NextDouble() - 0.5f;
                ViewBuilder.NormaliseInPlace(row);
            }
        }
        var dst = new FrameFeatures(projector.Target);
        projector.Project(src, dst);
        Assert.Equal(src.Views[1], dst.Views[1]);
        double Dist(float[] x, int a, int b, int d) => Math.Sqrt(Enumerable.Range(0, d).Sum(k => Math.Pow(x[a * d + k] - x[b * d + k], 2)));
        for (int q = 0; q < 16; q++)
        {
            Assert.Equal(1.0, dst.Views[0].AsSpan(q * 128, 128).ToArray().Sum(x => (double)x * x), 4);
            // Random unit vectors in 512-d sit at distance ~√2; a 128-d JL map keeps that within ~15%.
            double before = Dist(src.Views[0], q, (q + 1) % 16, 512), after = Dist(dst.Views[0], q, (q + 1) % 16, 128);
            Assert.InRange(after / before, 0.85, 1.15);
        }
    }
}
