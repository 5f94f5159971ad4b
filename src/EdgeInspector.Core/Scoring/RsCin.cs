using System.Numerics.Tensors;

namespace EdgeInspector.Core.Scoring;

/// <summary>
/// RsCIN (MuSc Eq. 4-8, _RsCIN.py): image scores are min-max normalised over the batch, then smoothed
/// over each image's k most similar images (cosine of global features, self included), averaged over
/// the window sizes k. The result is batch-relative: a ranking aid, never an alarm threshold.
/// </summary>
public static class RsCin
{
    /// <summary>Re-scores <paramref name="scores"/> given unit global features.</summary>
    public static float[] Rescore(ReadOnlySpan<float> scores, IReadOnlyList<float[]> globals, ReadOnlySpan<int> windows)
    {
        int n = scores.Length;
        if (globals.Count != n) throw new ArgumentException($"{globals.Count} global features for {n} scores.", nameof(globals));
        var result = new float[n];
        if (n == 0) return result;
        float min = TensorPrimitives.Min(scores), max = TensorPrimitives.Max(scores);
        var norm = new float[n];
        for (int i = 0; i < n; i++) norm[i] = max > min ? (scores[i] - min) / (max - min) : 0f;
        if (windows.IsEmpty)
        {
            return norm;
        }

        var w = new float[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) w[i * n + j] = i == j ? 1f : TensorPrimitives.Dot(globals[i], globals[j]);
        }
        var order = new int[n];
        var rowKeys = new float[n];
        foreach (int kRaw in windows)
        {
            int k = Math.Clamp(kRaw, 1, n);
            for (int i = 0; i < n; i++)
            {
                // Self plus the k-1 most similar others. Self must be in even when another image ties
                // at similarity 1 (a duplicate frame), so it is not left to the sort.
                int others = 0;
                for (int j = 0; j < n; j++)
                {
                    if (j == i) continue;
                    order[others] = j;
                    rowKeys[others++] = -w[i * n + j];
                }
                Array.Sort(rowKeys, order, 0, others);
                double num = norm[i], den = 1;
                for (int t = 0; t < k - 1; t++)
                {
                    int j = order[t];
                    num += w[i * n + j] * norm[j];
                    den += w[i * n + j];
                }
                result[i] += (float)(den != 0 ? num / den : norm[i]);
            }
        }
        for (int i = 0; i < n; i++) result[i] /= windows.Length;
        return result;
    }
}
