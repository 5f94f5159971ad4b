using System.Numerics.Tensors;

namespace EdgeInspector.Core.Features;

/// <summary>One tapped backbone output for one frame: channels × height × width, channel-major (NCHW minus N).</summary>
public readonly struct TapTensor
{
    /// <summary>Wraps a tap.</summary>
    public TapTensor(ReadOnlyMemory<float> data, int channels, int height, int width)
    {
        if (data.Length != channels * height * width)
        {
            throw new ArgumentException($"Tap holds {data.Length} floats, expected {channels}x{height}x{width}.", nameof(data));
        }
        Data = data;
        Channels = channels;
        Height = height;
        Width = width;
    }

    /// <summary>The values.</summary>
    public ReadOnlyMemory<float> Data { get; }

    /// <summary>C.</summary>
    public int Channels { get; }

    /// <summary>H.</summary>
    public int Height { get; }

    /// <summary>W.</summary>
    public int Width { get; }
}

/// <summary>
/// Turns tapped backbone outputs into views (spec §2.3, LNAMD): every tap is brought onto the finest
/// tap grid (bilinear, align_corners=False as PatchCore's alignment), normalised per image over its
/// whole (C,H,W) tensor (LayerNorm without affine, eps 1e-5), mean-aggregated over a×a neighbourhoods
/// (stride 1, zero padding counted, so border tokens shrink as in MuSc), and L2-normalised per token.
/// </summary>
/// <remarks>Not thread-safe: it owns scratch buffers. Use one per worker thread.</remarks>
public sealed class ViewBuilder
{
    private const float LayerNormEps = 1e-5f;
    private readonly FeatureLayout _layout;
    private readonly int[] _viewTap;
    private readonly int _globalTap;
    private float[] _aligned = [];
    private float[] _pooled = [];
    private float[] _rowPass = [];
    private float[] _projected = [];
    private readonly ViewProjector? _projector;

    /// <summary>
    /// Creates a builder. <paramref name="tapNames"/> gives the order taps are passed to <see cref="Build"/>;
    /// <paramref name="globalTap"/> is the tap whose global average is the image-level feature.
    /// </summary>
    /// <remarks>
    /// With a <paramref name="projector"/> (from <paramref name="layout"/>), <see cref="Build"/> writes the
    /// projected views (<see cref="ViewProjector.Target"/>): each tap is projected after its layer norm and
    /// before the pooling. Alignment, layer norm and pooling are linear and the projection is too, so this
    /// is the projection of the full-width view up to float rounding (the final L2 makes the full-width
    /// view's own normalisation immaterial), at a fraction of the pooling's work.
    /// </remarks>
    public ViewBuilder(FeatureLayout layout, IReadOnlyList<string> tapNames, string globalTap, ViewProjector? projector = null)
    {
        if (projector is not null && projector.Source != layout) throw new ArgumentException("The projector was built for another layout.", nameof(projector));
        _projector = projector;
        _layout = layout;
        _viewTap = new int[layout.Views.Count];
        for (int v = 0; v < _viewTap.Length; v++)
        {
            int t = IndexOf(tapNames, layout.Views[v].Tap);
            if (t < 0) throw new ArgumentException($"View {layout.Views[v]} names tap '{layout.Views[v].Tap}', which is not among the taps [{string.Join(", ", tapNames)}].");
            if (layout.Views[v].Degree < 1 || layout.Views[v].Degree % 2 == 0) throw new ArgumentException($"View {layout.Views[v]}: aggregation degree must be odd and at least 1.");
            _viewTap[v] = t;
        }
        _globalTap = IndexOf(tapNames, globalTap);
        if (_globalTap < 0) throw new ArgumentException($"Global tap '{globalTap}' is not among the taps [{string.Join(", ", tapNames)}].");
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++) if (names[i] == name) return i;
        return -1;
    }

    /// <summary>
    /// Fills <paramref name="output"/> from the frame's taps (in the order given at construction). It follows
    /// the layout, or the projector's target when one was given.
    /// </summary>
    public void Build(ReadOnlySpan<TapTensor> taps, FrameFeatures output)
    {
        int gh = _layout.GridHeight, gw = _layout.GridWidth, p = gh * gw;
        for (int t = 0; t < taps.Length; t++)
        {
            var tap = taps[t];
            if (t == _globalTap)
            {
                if (tap.Channels != _layout.GlobalDim) throw new ArgumentException($"Global tap has {tap.Channels} channels, layout expects {_layout.GlobalDim}.");
                GlobalAverage(tap, output.Global);
            }
            bool tapHasView = false;
            foreach (int vt in _viewTap) tapHasView |= vt == t;
            if (!tapHasView) continue;

            int c = tap.Channels;
            EnsureSize(ref _aligned, c * p);
            EnsureSize(ref _pooled, c * p);
            // Channel-major on the tap grid -> channel-major on the finest grid -> patch-major (P x C),
            // so that every later step is a contiguous vector operation over channels.
            ReadOnlySpan<float> chw = tap.Data.Span;
            if (tap.Height != gh || tap.Width != gw)
            {
                ResizeBilinear(chw, c, tap.Height, tap.Width, _pooled.AsSpan(0, c * p), gh, gw);
                chw = _pooled.AsSpan(0, c * p);
            }
            Span<float> aligned = _aligned.AsSpan(0, c * p);
            Transpose(chw, c, p, aligned);
            LayerNorm(aligned);

            for (int v = 0; v < _viewTap.Length; v++)
            {
                if (_viewTap[v] != t) continue;
                var spec = _layout.Views[v];
                if (spec.Dim != c) throw new ArgumentException($"View {spec} expects width {spec.Dim}, tap '{spec.Tap}' has {c} channels.");
                Span<float> dst = output.Views[v];
                ReadOnlySpan<float> rows = aligned;
                int width = c;
                if (_projector is { } projector)
                {
                    width = projector.Target.Views[v].Dim;
                    EnsureSize(ref _projected, width * p);
                    if (projector.ProjectRows(v, aligned, _projected.AsSpan(0, width * p))) rows = _projected.AsSpan(0, width * p);
                }
                if (dst.Length != width * p) throw new ArgumentException($"View {spec}: the output holds {dst.Length} floats, {p} patches of {width} need {width * p}.", nameof(output));
                if (spec.Degree > 1) BoxMean(rows, width, gh, gw, spec.Degree, dst);
                else rows.CopyTo(dst);
                for (int q = 0; q < p; q++) NormaliseInPlace(dst.Slice(q * width, width));
            }
        }
    }

    private static void EnsureSize(ref float[] buffer, int size)
    {
        if (buffer.Length < size) buffer = new float[size];
    }

    /// <summary>C×P to P×C in 32×32 tiles, so both sides stay in cache.</summary>
    internal static void Transpose(ReadOnlySpan<float> src, int channels, int patches, Span<float> dst)
    {
        const int T = 32;
        for (int c0 = 0; c0 < channels; c0 += T)
        {
            int c1 = Math.Min(c0 + T, channels);
            for (int q0 = 0; q0 < patches; q0 += T)
            {
                int q1 = Math.Min(q0 + T, patches);
                for (int ch = c0; ch < c1; ch++)
                {
                    ReadOnlySpan<float> s = src.Slice(ch * patches, patches);
                    for (int q = q0; q < q1; q++) dst[q * channels + ch] = s[q];
                }
            }
        }
    }

    /// <summary>Global average over H×W of each channel, then L2-normalised.</summary>
    internal static void GlobalAverage(TapTensor tap, Span<float> output)
    {
        int hw = tap.Height * tap.Width;
        for (int ch = 0; ch < tap.Channels; ch++) output[ch] = TensorPrimitives.Sum(tap.Data.Span.Slice(ch * hw, hw)) / hw;
        NormaliseInPlace(output);
    }

    /// <summary>Bilinear resize per channel with align_corners=False (half-pixel centres, edge clamped), as torch's interpolate.</summary>
    internal static void ResizeBilinear(ReadOnlySpan<float> src, int channels, int sh, int sw, Span<float> dst, int dh, int dw)
    {
        float sy = (float)sh / dh, sx = (float)sw / dw;
        Span<int> x0 = stackalloc int[dw];
        Span<int> x1 = stackalloc int[dw];
        Span<float> fx = stackalloc float[dw];
        for (int x = 0; x < dw; x++)
        {
            float src_x = MathF.Max(0, (x + 0.5f) * sx - 0.5f);
            x0[x] = Math.Min((int)src_x, sw - 1);
            x1[x] = Math.Min(x0[x] + 1, sw - 1);
            fx[x] = src_x - x0[x];
        }
        for (int ch = 0; ch < channels; ch++)
        {
            ReadOnlySpan<float> s = src.Slice(ch * sh * sw, sh * sw);
            Span<float> d = dst.Slice(ch * dh * dw, dh * dw);
            for (int y = 0; y < dh; y++)
            {
                float src_y = MathF.Max(0, (y + 0.5f) * sy - 0.5f);
                int y0 = Math.Min((int)src_y, sh - 1), y1 = Math.Min(y0 + 1, sh - 1);
                float fy = src_y - y0;
                for (int x = 0; x < dw; x++)
                {
                    float top = s[y0 * sw + x0[x]] * (1 - fx[x]) + s[y0 * sw + x1[x]] * fx[x];
                    float bottom = s[y1 * sw + x0[x]] * (1 - fx[x]) + s[y1 * sw + x1[x]] * fx[x];
                    d[y * dw + x] = top * (1 - fy) + bottom * fy;
                }
            }
        }
    }

    /// <summary>
    /// How much each source pixel (<paramref name="sh"/> × <paramref name="sw"/>) weighs in
    /// <see cref="ResizeBilinear"/>'s output (<paramref name="dh"/> × <paramref name="dw"/>): the sum of its
    /// bilinear weights over every output pixel. A resized channel's sum is Σ weight · pixel, so the mean of a
    /// resized tap is known without resizing it (the views graph's layer norm).
    /// </summary>
    public static float[] ResizeWeights(int sh, int sw, int dh, int dw)
    {
        var wy = AxisWeights(sh, dh);
        var wx = AxisWeights(sw, dw);
        var weights = new float[sh * sw];
        for (int y = 0; y < sh; y++)
            for (int x = 0; x < sw; x++) weights[y * sw + x] = (float)(wy[y] * wx[x]);
        return weights;
    }

    /// <summary>Along one axis, each source position's summed weight over the outputs (ResizeBilinear's coordinates).</summary>
    private static double[] AxisWeights(int source, int destination)
    {
        var weights = new double[source];
        float scale = (float)source / destination;
        for (int o = 0; o < destination; o++)
        {
            float at = MathF.Max(0, (o + 0.5f) * scale - 0.5f);
            int i0 = Math.Min((int)at, source - 1), i1 = Math.Min(i0 + 1, source - 1);
            float f = at - i0;
            weights[i0] += 1 - f;
            weights[i1] += f;
        }
        return weights;
    }

    /// <summary>One scalar mean and variance over the whole tensor (LayerNorm over (C,H,W), no affine).</summary>
    internal static void LayerNorm(Span<float> x)
    {
        // Two passes (mean, then centred squares) keep the variance accurate in float.
        float mean = TensorPrimitives.Sum(x) / x.Length;
        TensorPrimitives.Add(x, -mean, x);
        float var = TensorPrimitives.SumOfSquares(x) / x.Length;
        TensorPrimitives.Multiply(x, 1f / MathF.Sqrt(var + LayerNormEps), x);
    }

    /// <summary>
    /// AvgPool2d(kernel=a, stride=1, padding=(a−1)/2, count_include_pad=True) on patch-major rows
    /// (P × C): two separable passes, each a sum of whole channel vectors.
    /// </summary>
    internal void BoxMean(ReadOnlySpan<float> src, int channels, int h, int w, int a, Span<float> dst)
    {
        int r = a / 2;
        EnsureSize(ref _rowPass, h * w * channels);
        Span<float> row = _rowPass.AsSpan(0, h * w * channels);
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                Span<float> acc = row.Slice((y * w + x) * channels, channels);
                acc.Clear();
                int lo = Math.Max(0, x - r), hi = Math.Min(w - 1, x + r);
                for (int xx = lo; xx <= hi; xx++) TensorPrimitives.Add(acc, src.Slice((y * w + xx) * channels, channels), acc);
            }
        }
        float inv = 1f / (a * a);
        for (int y = 0; y < h; y++)
        {
            int lo = Math.Max(0, y - r), hi = Math.Min(h - 1, y + r);
            for (int x = 0; x < w; x++)
            {
                Span<float> acc = dst.Slice((y * w + x) * channels, channels);
                acc.Clear();
                for (int yy = lo; yy <= hi; yy++) TensorPrimitives.Add(acc, row.Slice((yy * w + x) * channels, channels), acc);
                TensorPrimitives.Multiply(acc, inv, acc);
            }
        }
    }

    /// <summary>Scales <paramref name="x"/> to unit length; a zero vector stays zero.</summary>
    public static void NormaliseInPlace(Span<float> x)
    {
        float n = TensorPrimitives.Norm(x);
        if (n > 0) TensorPrimitives.Multiply(x, 1f / n, x);
    }
}
