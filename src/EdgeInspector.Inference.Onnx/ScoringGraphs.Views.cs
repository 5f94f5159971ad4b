using EdgeInspector.Core.Features;
using Onnx;

namespace EdgeInspector.Inference.Onnx;

/// <summary>The views graph: the backbone's taps to the engine's views, on the backbone's provider.</summary>
public static partial class ScoringGraphs
{
    /// <summary>A tap as the views graph takes it: the backbone output's name and its C, H, W at the configured input.</summary>
    public readonly record struct TapShape(string Name, int Channels, int Height, int Width);

    /// <summary>
    /// The views graph, serialised: the backbone's taps ([B, C, H, W] each, B free) to the engine's views
    /// (<c>view_v</c> [B, P, D_v]) and the global feature (<c>global</c> [B, C_g]), the steps of
    /// <see cref="ViewBuilder"/>: each tap bilinearly resized onto the finest grid (half-pixel centres, as
    /// <see cref="ViewBuilder"/>'s align_corners=False), layer-normed per image over (C, H, W) without affine
    /// (eps 1e-5), projected to the view's width by a 1×1 convolution whose weights are
    /// <paramref name="projector"/>'s matrix (the graph's only weights), mean-pooled over a×a (stride 1, zero
    /// padding counted), and L2-normalised per patch (a zero patch stays zero). The projection runs first, on
    /// the tap's own grid, for all of a tap's views in one convolution, and the layer norm's mean is taken off
    /// its output; the layer norm's scale cancels in the final normalisation (every step before it is linear,
    /// so the views are the same up to float rounding, which the tests hold to <see cref="ViewBuilder"/>'s
    /// order within 1e-5).
    /// </summary>
    public static byte[] Views(FeatureLayout source, IReadOnlyList<TapShape> taps, string globalTap, ViewProjector? projector)
    {
        if (projector is not null && projector.Source != source) throw new ArgumentException("The projector was built for another layout.", nameof(projector));
        int gh = source.GridHeight, gw = source.GridWidth, p = source.Patches;
        var target = projector?.Target ?? source;
        var g = new GraphProto { Name = "edgeinspector_views" };
        g.Initializer.Add(Scalar("tiny", 1e-30f));
        g.Initializer.Add(Int64s("grid", gh, gw));
        g.Initializer.Add(Int64s("zero", 0));
        g.Initializer.Add(Int64s("two", 2));
        foreach (var tap in taps)
        {
            string t = tap.Name;
            g.Input.Add(Batched(t, TensorProto.Types.DataType.Float, tap.Channels, tap.Height, tap.Width));
            if (t == globalTap)
            {
                g.Node.Add(Node("GlobalAveragePool", [t], [$"{t}_gap"]));
                g.Node.Add(Node("Flatten", [$"{t}_gap"], [$"{t}_gflat"], Int("axis", 1)));
                Normalise(g, $"{t}_gflat", "global");
                g.Output.Add(Batched("global", TensorProto.Types.DataType.Float, tap.Channels));
            }
            bool used = false, plain = false;
            var projected = new List<int>();
            for (int v = 0; v < source.Views.Count; v++)
            {
                if (source.Views[v].Tap != t) continue;
                used = true;
                if (source.Views[v].Dim != tap.Channels) throw new ArgumentException($"View {source.Views[v]} expects width {source.Views[v].Dim}, tap '{t}' has {tap.Channels} channels.");
                if (projector?.Matrix(v) is not null) projected.Add(v);
                else plain = true;
            }
            if (!used) continue;
            bool resized = tap.Height != gh || tap.Width != gw;
            if (plain)
            {
                // Unprojected views take the aligned tap, layer-normed, as it is.
                if (!g.Initializer.Any(i => i.Name == "eps")) g.Initializer.Add(Scalar("eps", 1e-5f));
                string x = t;
                if (resized)
                {
                    Resize(g, t, $"{t}_aligned");
                    x = $"{t}_aligned";
                }
                g.Node.Add(Node("ReduceMean", [x], [$"{t}_plain_mean"], Ints("axes", 1, 2, 3), Int("keepdims", 1)));
                g.Node.Add(Node("Sub", [x, $"{t}_plain_mean"], [$"{t}_centred"]));
                g.Node.Add(Node("Mul", [$"{t}_centred", $"{t}_centred"], [$"{t}_squares"]));
                g.Node.Add(Node("ReduceMean", [$"{t}_squares"], [$"{t}_var"], Ints("axes", 1, 2, 3), Int("keepdims", 1)));
                g.Node.Add(Node("Add", [$"{t}_var", "eps"], [$"{t}_var_eps"]));
                g.Node.Add(Node("Sqrt", [$"{t}_var_eps"], [$"{t}_std"]));
                g.Node.Add(Node("Div", [$"{t}_centred", $"{t}_std"], [$"{t}_norm"]));
            }
            var inputs = new Dictionary<int, string>();
            if (projected.Count > 0)
            {
                // The tap's projected views in one 1×1 convolution, on the tap at its own resolution: alignment,
                // layer norm and projection are linear, so P·LN(align(t)) = (align(P·t) − μ·P·1) / σ, with μ and σ
                // the aligned tap's. The projection then runs on the tap's own grid (stage 3's 14×14, a quarter of
                // the aligned 28×28) and once per tap, not once per view. σ, one positive number per image and tap,
                // cancels in each patch's L2 normalisation at the end, so it is left out; μ is the weighted mean of
                // the tap itself (ViewBuilder.ResizeWeights), so the aligned tap is never made.
                if (resized)
                {
                    var resizeWeights = ViewBuilder.ResizeWeights(tap.Height, tap.Width, gh, gw);
                    // ReduceMean divides by C·h·w; the aligned tap's mean is Σ weight·t / (C·H·W).
                    float scale = (float)(tap.Height * tap.Width) / (gh * gw);
                    for (int i = 0; i < resizeWeights.Length; i++) resizeWeights[i] *= scale;
                    g.Initializer.Add(Floats($"{t}_resize_weights", resizeWeights, 1, 1, tap.Height, tap.Width));
                    g.Node.Add(Node("Mul", [t, $"{t}_resize_weights"], [$"{t}_weighted"]));
                    g.Node.Add(Node("ReduceMean", [$"{t}_weighted"], [$"{t}_mean"], Ints("axes", 1, 2, 3), Int("keepdims", 1)));
                }
                else g.Node.Add(Node("ReduceMean", [t], [$"{t}_mean"], Ints("axes", 1, 2, 3), Int("keepdims", 1)));
                int d = target.Views[projected[0]].Dim, n = projected.Count;
                var weights = new float[n * d * tap.Channels];
                var rowSums = new float[n * d];
                for (int i = 0; i < n; i++)
                {
                    var matrix = projector!.Matrix(projected[i])!;
                    if (target.Views[projected[i]].Dim != d) throw new ArgumentException($"The views of tap '{t}' are projected to different widths.");
                    matrix.CopyTo(weights, i * d * tap.Channels);
                    for (int o = 0; o < d; o++)
                    {
                        double sum = 0;
                        for (int c = 0; c < tap.Channels; c++) sum += matrix[o * tap.Channels + c];
                        rowSums[i * d + o] = (float)sum;
                    }
                }
                g.Initializer.Add(Floats($"{t}_projection", weights, n * d, tap.Channels, 1, 1));
                g.Initializer.Add(Floats($"{t}_projection_sums", rowSums, 1, n * d, 1, 1));
                g.Node.Add(Node("Conv", [t, $"{t}_projection"], [$"{t}_projected_own"]));
                string z = $"{t}_projected_own";
                if (resized)
                {
                    Resize(g, z, $"{t}_projected_aligned");
                    z = $"{t}_projected_aligned";
                }
                g.Node.Add(Node("Mul", [$"{t}_mean", $"{t}_projection_sums"], [$"{t}_projected_mean"]));
                g.Node.Add(Node("Sub", [z, $"{t}_projected_mean"], [$"{t}_projected"]));
                if (n == 1) inputs[projected[0]] = $"{t}_projected";
                else
                {
                    var parts = new string[n];
                    for (int i = 0; i < n; i++) inputs[projected[i]] = parts[i] = $"projected_{projected[i]}";
                    g.Initializer.Add(Int64s($"{t}_split", Enumerable.Repeat((long)d, n).ToArray()));
                    g.Node.Add(Node("Split", [$"{t}_projected", $"{t}_split"], parts, Int("axis", 1)));
                }
            }
            for (int v = 0; v < source.Views.Count; v++)
            {
                var spec = source.Views[v];
                if (spec.Tap != t) continue;
                int d = target.Views[v].Dim;
                string y = inputs.TryGetValue(v, out var input) ? input : $"{t}_norm";
                if (spec.Degree > 1)
                {
                    int r = spec.Degree / 2;
                    g.Node.Add(Node("AveragePool", [y], [$"pooled_{v}"], Ints("kernel_shape", spec.Degree, spec.Degree), Ints("strides", 1, 1),
                        Ints("pads", r, r, r, r), Int("count_include_pad", 1)));
                    y = $"pooled_{v}";
                }
                Normalise(g, y, $"unit_{v}", axis: 1);
                g.Initializer.Add(Int64s($"rows_shape_{v}", -1, p, d));
                g.Node.Add(Node("Transpose", [$"unit_{v}"], [$"patch_major_{v}"], Ints("perm", 0, 2, 3, 1)));
                g.Node.Add(Node("Reshape", [$"patch_major_{v}", $"rows_shape_{v}"], [$"view_{v}"]));
                g.Output.Add(Batched($"view_{v}", TensorProto.Types.DataType.Float, p, d));
            }
        }
        return Model(g);
    }

    /// <summary>
    /// <paramref name="x"/> ([B, C, h, w]) bilinearly resized onto the grid (half-pixel centres, as
    /// <see cref="ViewBuilder"/>'s align_corners=False); sizes = [B, C] of x followed by the grid, so the batch stays free.
    /// </summary>
    private static void Resize(GraphProto g, string x, string output)
    {
        g.Node.Add(Node("Shape", [x], [$"{x}_shape"]));
        g.Node.Add(Node("Slice", [$"{x}_shape", "zero", "two"], [$"{x}_bc"]));
        g.Node.Add(Node("Concat", [$"{x}_bc", "grid"], [$"{x}_sizes"], Int("axis", 0)));
        g.Node.Add(Node("Resize", [x, "", "", $"{x}_sizes"], [output], Str("mode", "linear"), Str("coordinate_transformation_mode", "half_pixel")));
    }

    /// <summary>x / max(‖x‖₂ over <paramref name="axis"/>, 1e-30): unit length, a zero vector stays zero.</summary>
    private static void Normalise(GraphProto g, string x, string output, int axis = 1)
    {
        g.Node.Add(Node("ReduceL2", [x], [$"{output}_l2"], Ints("axes", axis), Int("keepdims", 1)));
        g.Node.Add(Node("Max", [$"{output}_l2", "tiny"], [$"{output}_l2_safe"]));
        g.Node.Add(Node("Div", [x, $"{output}_l2_safe"], [output]));
    }
}
