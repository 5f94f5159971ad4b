using System.Text;
using System.Text.Json;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Inference.Onnx;

namespace EdgeInspector.Eval;

/// <summary>
/// The views graph's part of an export: the graph, the taps of the first frames as the backbone gave them
/// (per tap, frames × C × h × w), and the views and global feature the run built from them.
/// </summary>
internal sealed record ViewsExport(byte[] Model, IReadOnlyList<ViewSpec> Views, string GlobalTap, IReadOnlyList<(string Name, int Channels, int Height, int Width)> Taps,
    float[][] TapData, IReadOnlyList<FrameFeatures> Expected, string ExpectedFrom, double ManagedDifference);

/// <summary>
/// <c>--export-graphs DIR</c>: the scoring graphs of the run's shape, the reservoir the stream engine ended
/// with, a few real frames' inputs, and what ONNX Runtime's CPU provider gives on them; the views graph with
/// two frames' taps and the views the run built from them; as .npy files and a manifest.
/// scripts/device-check.sh replays them on a GPU machine that has no .NET.
/// </summary>
/// <remarks>
/// The reservoir is exported as its <see cref="Slots"/> most recent frames, with graphs of that many slots:
/// a whole reservoir's frames for the window search (64 × 784 patches × 6 views × 128 floats) are more than
/// the 64 MiB a device call carries. The graphs of the engine's own capacity are exported beside them
/// (score_full.onnx, store_full.onnx) for the device check to time, on those slots repeated.
/// </remarks>
internal static class GraphExport
{
    /// <summary>Frames exported.</summary>
    public const int Frames = 4;

    /// <summary>Frames whose taps are exported for the views graph (a frame's taps are 2.4 MB at the defaults).</summary>
    public const int ViewFrames = 2;

    /// <summary>Reservoir slots exported.</summary>
    public const int Slots = 8;

    /// <summary>Writes the export of <paramref name="engine"/>'s reservoir and <paramref name="frames"/> (each with its name), and <paramref name="viewsGraph"/>, into <paramref name="dir"/>.</summary>
    public static void Write(string dir, ReservoirEngine engine, IReadOnlyList<(string Name, FrameFeatures Features)> frames, BackboneOptions backbone, ViewsExport viewsGraph, TextWriter log)
    {
        var layout = engine.Layout;
        var o = engine.Options;
        var reservoir = engine.Reservoir;
        var all = reservoir.Export();
        if (all.Count < 1) throw new InvalidOperationException("--export-graphs: the stream engine holds no reservoir frame to export (a lot shorter than two frames?).");
        if (frames.Count == 0) throw new InvalidOperationException("--export-graphs: no frame could be read to export.");
        var held = all.Skip(Math.Max(0, all.Count - Slots)).ToArray();
        int radius = reservoir.Radius;
        var full = ScoringShape.For(layout, reservoir.Capacity, reservoir.Keep, o.TopN, radius);
        var shape = ScoringShape.For(layout, Math.Min(Slots, reservoir.Capacity), reservoir.Keep, o.TopN, radius);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "score.onnx"), ScoringGraphs.Score(shape));
        File.WriteAllBytes(Path.Combine(dir, "store.onnx"), ScoringGraphs.Store(shape));
        File.WriteAllBytes(Path.Combine(dir, "score_full.onnx"), ScoringGraphs.Score(full));
        File.WriteAllBytes(Path.Combine(dir, "store_full.onnx"), ScoringGraphs.Store(full));

        int r = shape.Capacity, keep = shape.Keep, p = shape.Patches, views = shape.Dims.Length, f = frames.Count;
        int gh = layout.GridHeight, gw = layout.GridWidth;
        var excluded = new bool[r];
        for (int s = held.Length; s < r; s++) excluded[s] = true;
        var included = new bool[r];
        for (int s = 0; s < held.Length; s++) included[s] = true;
        int k = Stats.IntervalCount(held.Length, o.IntervalFraction);

        // The CPU outputs: the graphs on ONNX Runtime's CPU provider, the managed kernel beside them.
        using var scoring = new OnnxScoring("cpu", backbone);
        using var kernel = scoring.Create(layout, r, keep, o.TopN, radius);
        using var managed = new FrameReservoir(layout, new SparseProjection(layout, o.SelectionDimsPerView, o.Seed), r, keep, o.IntervalFraction, radius: radius);
        var kept = new float[held.Length][][];
        for (int s = 0; s < held.Length; s++)
        {
            kept[s] = KeptRows(held[s], shape.Dims);
            kernel.Store(s, kept[s], kept[s][0].Length / shape.Dims[0], held[s].Kept is null ? null : held[s].Rows);
            managed.Import(held[s]);
        }
        var patches = new float[f * p];
        var images = new float[f];
        var twin = new float[p];
        double worstPatch = 0, worstImage = 0;
        for (int i = 0; i < f; i++)
        {
            var span = patches.AsSpan(i * p, p);
            images[i] = kernel.Score(frames[i].Features, included, k, o.TopN, span);
            // An id no entry has: every held frame scores it, as in the graph's inputs.
            managed.Score(frames[i].Features, long.MinValue, twin, o.TopN, out float image);
            for (int q = 0; q < p; q++) worstPatch = Math.Max(worstPatch, Math.Abs(twin[q] - span[q]));
            worstImage = Math.Max(worstImage, Math.Abs(image - images[i]));
        }

        for (int v = 0; v < views; v++)
        {
            int d = shape.Dims[v];
            var slots = new float[r * d * keep];
            for (int s = 0; s < held.Length; s++) ScoringGraphs.SlotRows(kept[s][v], kept[s][v].Length / d, d, keep, slots.AsSpan(s * d * keep, d * keep));
            Npy.Write(Path.Combine(dir, $"reservoir_{v}.npy"), slots, [r, d, keep]);
            if (shape.Windowed)
            {
                // Zero outside each frame, at the frame's levels, in the graphs' blocks: what the store graph writes.
                var grid = new float[shape.GridLength(v)];
                var levels = new float[gh * gw * d];
                for (int s = 0; s < held.Length; s++)
                {
                    WindowGrid.Quantise(held[s].Rows[v].AsSpan(0, gh * gw * d), levels);
                    ScoringGraphs.SlotGrid(shape, v, levels, s, grid);
                }
                Npy.Write(Path.Combine(dir, $"grid_{v}.npy"), grid, shape.GridDims(v));
            }
            var queries = new float[f * p * d];
            for (int i = 0; i < f; i++) frames[i].Features.Views[v].AsSpan(0, p * d).CopyTo(queries.AsSpan(i * p * d));
            Npy.Write(Path.Combine(dir, $"query_{v}.npy"), queries, [f, p, d]);
        }
        Npy.Write(Path.Combine(dir, "excluded.npy"), excluded, [r, 1]);
        Npy.Write(Path.Combine(dir, "k.npy"), new long[] { k }, [1]);
        Npy.Write(Path.Combine(dir, "expected_patches.npy"), patches, [f, p]);
        Npy.Write(Path.Combine(dir, "expected_image.npy"), images, [f]);
        WriteViews(dir, viewsGraph, layout);

        using (var stream = File.Create(Path.Combine(dir, "manifest.json")))
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("graphs", "score.onnx: inputs excluded [R,1] bool, k [1] int64, query_v [P,D_v], reservoir_v [R,D_v,K], with a window grid_v [H+2r,blocks,D_v,B,R] (each slot's frame zero-padded by r and to whole blocks of B columns); outputs patches [P], image []. " +
                "store.onnx: slot [1,1] int64, reservoir_v, rows_v [1,D_v,K], with a window grid_v and frame_v [1,H,W,D_v]; outputs updated_v (and updated_grid_v). " +
                "score_full.onnx / store_full.onnx: the same at the engine's capacity");
            w.WriteNumber("radius", radius);
            if (shape.Windowed) w.WriteNumber("window_block", shape.Block);
            w.WriteNumber("capacity_full", full.Capacity);
            w.WriteNumber("opset", ScoringGraphs.Opset);
            w.WriteNumber("patches", p);
            w.WriteNumber("grid_height", layout.GridHeight);
            w.WriteNumber("grid_width", layout.GridWidth);
            w.WriteStartArray("dims");
            foreach (int d in shape.Dims) w.WriteNumberValue(d);
            w.WriteEndArray();
            w.WriteNumber("capacity", r);
            w.WriteNumber("keep", keep);
            w.WriteNumber("top_n", shape.TopN);
            w.WriteNumber("held", held.Length);
            w.WriteNumber("k", k);
            w.WriteStartArray("frames");
            foreach (var (name, _) in frames) w.WriteStringValue(name);
            w.WriteEndArray();
            w.WriteString("expected_from", "ONNX Runtime CPU provider (the .NET eval)");
            w.WriteNumber("managed_max_patch_difference", worstPatch);
            w.WriteNumber("managed_max_image_difference", worstImage);
            w.WriteString("views_graph", "views.onnx: inputs one per tap [B,C,h,w] (taps_<name>.npy); outputs view_v [B,P,D_v], global [B,G] " +
                "(expected_view_v.npy, expected_global.npy)");
            w.WriteStartArray("taps");
            foreach (var (name, c, h, wd) in viewsGraph.Taps)
            {
                w.WriteStartObject();
                w.WriteString("name", name);
                w.WriteNumber("channels", c);
                w.WriteNumber("height", h);
                w.WriteNumber("width", wd);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("views");
            for (int v = 0; v < viewsGraph.Views.Count; v++)
            {
                w.WriteStartObject();
                w.WriteString("tap", viewsGraph.Views[v].Tap);
                w.WriteNumber("degree", viewsGraph.Views[v].Degree);
                w.WriteNumber("dim", layout.Views[v].Dim);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("global_tap", viewsGraph.GlobalTap);
            w.WriteNumber("view_frames", viewsGraph.Expected.Count);
            w.WriteString("views_expected_from", viewsGraph.ExpectedFrom);
            w.WriteNumber("views_managed_max_difference", viewsGraph.ManagedDifference);
            w.WriteEndObject();
        }
        log.WriteLine($"graphs exported to {dir}: {f} frames against {held.Length} reservoir frames (k {k}); the CPU graph and the managed kernel differ by at most {worstPatch:E1} (patches), {worstImage:E1} (image)");
    }

    /// <summary>The views graph, the taps of <see cref="ViewsExport.Expected"/>'s frames and the views built from them.</summary>
    private static void WriteViews(string dir, ViewsExport views, FeatureLayout layout)
    {
        int f = views.Expected.Count, p = layout.Patches;
        File.WriteAllBytes(Path.Combine(dir, "views.onnx"), views.Model);
        for (int t = 0; t < views.Taps.Count; t++)
        {
            var (name, c, h, w) = views.Taps[t];
            Npy.Write(Path.Combine(dir, $"taps_{name}.npy"), views.TapData[t], [f, c, h, w]);
        }
        for (int v = 0; v < layout.Views.Count; v++)
        {
            int d = layout.Views[v].Dim;
            var data = new float[f * p * d];
            for (int i = 0; i < f; i++) views.Expected[i].Views[v].AsSpan(0, p * d).CopyTo(data.AsSpan(i * p * d));
            Npy.Write(Path.Combine(dir, $"expected_view_{v}.npy"), data, [f, p, d]);
        }
        var global = new float[f * layout.GlobalDim];
        for (int i = 0; i < f; i++) views.Expected[i].Global.AsSpan(0, layout.GlobalDim).CopyTo(global.AsSpan(i * layout.GlobalDim));
        Npy.Write(Path.Combine(dir, "expected_global.npy"), global, [f, layout.GlobalDim]);
    }

    /// <summary>A held frame's kept rows per view: its rows as they are, or the k-center subset of its whole frame.</summary>
    private static float[][] KeptRows(ReservoirFrame frame, int[] dims)
    {
        if (frame.Kept is not { } kept) return frame.Rows;
        var rows = new float[dims.Length][];
        for (int v = 0; v < dims.Length; v++)
        {
            int d = dims[v];
            rows[v] = new float[kept.Length * d];
            for (int c = 0; c < kept.Length; c++) frame.Rows[v].AsSpan(kept[c] * d, d).CopyTo(rows[v].AsSpan(c * d, d));
        }
        return rows;
    }
}

/// <summary>NumPy's .npy format, version 1.0: what the device check reads with numpy.load.</summary>
internal static class Npy
{
    public static void Write(string path, float[] data, long[] shape) => Write(path, "<f4", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()), shape);

    public static void Write(string path, long[] data, long[] shape) => Write(path, "<i8", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()), shape);

    public static void Write(string path, bool[] data, long[] shape) => Write(path, "|b1", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()), shape);

    private static void Write(string path, string descr, ReadOnlySpan<byte> bytes, long[] shape)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException(".npy export writes little-endian data.");
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
        // Magic (6) + version (2) + length (2) + header + '\n', padded with spaces to a multiple of 64.
        int total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        using var stream = File.Create(path);
        stream.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.ASCII.GetBytes(header));
        stream.Write(bytes);
    }
}
