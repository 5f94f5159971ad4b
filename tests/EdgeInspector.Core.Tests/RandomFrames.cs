using EdgeInspector.Core.Features;

namespace EdgeInspector.Core.Tests;

/// <summary>Frames of random unit patches, for tests that need many distinct frames and no real image.</summary>
internal static class RandomFrames
{
    /// <summary>One frame: every patch of every view of <paramref name="layout"/> a random unit vector, drawn from <paramref name="rng"/>.</summary>
    public static FrameFeatures Next(FeatureLayout layout, Random rng)
    {
        var f = new FrameFeatures(layout);
        for (int v = 0; v < layout.Views.Count; v++)
        {
            int d = layout.Views[v].Dim;
            for (int q = 0; q < layout.Patches; q++)
            {
                var row = f.Views[v].AsSpan(q * d, d);
                for (int k = 0; k < d; k++) row[k] = (float)rng.NextDouble() - 0.5f;
                float n = MathF.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot(row, row));
                for (int k = 0; k < d; k++) row[k] /= n;
            }
        }
        return f;
    }

    /// <summary><paramref name="count"/> frames, drawn one after another from one generator seeded with <paramref name="seed"/>.</summary>
    public static FrameFeatures[] Draw(FeatureLayout layout, int count, int seed)
    {
        var rng = new Random(seed);
        var frames = new FrameFeatures[count];
        for (int i = 0; i < count; i++) frames[i] = Next(layout, rng);
        return frames;
    }
}
