using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Features;
using Google.Protobuf;
using Onnx;

namespace EdgeInspector.Inference.Onnx;

/// <summary>The shape a reservoir's scoring graphs are built for: one per layout, reservoir size and top N.</summary>
/// <param name="Patches">Patches per frame (P).</param>
/// <param name="Dims">Each view's width (D_v).</param>
/// <param name="Capacity">Reservoir slots (R).</param>
/// <param name="Keep">Rows kept per slot (K).</param>
/// <param name="TopN">Patches averaged into the image score.</param>
/// <param name="Height">Grid rows (H; P = H·W).</param>
/// <param name="Width">Grid columns (W).</param>
/// <param name="Radius">The window's radius r (−1: no window search).</param>
public sealed record ScoringShape(int Patches, int[] Dims, int Capacity, int Keep, int TopN, int Height, int Width, int Radius)
{
    /// <summary>The shape of a reservoir of <paramref name="layout"/> searching a window of <paramref name="radius"/> (−1: none).</summary>
    public static ScoringShape For(FeatureLayout layout, int capacity, int keep, int topN, int radius)
    {
        var dims = new int[layout.Views.Count];
        for (int v = 0; v < dims.Length; v++) dims[v] = layout.Views[v].Dim;
        return new ScoringShape(layout.Patches, dims, capacity, Math.Min(keep, layout.Patches), Math.Clamp(topN, 1, layout.Patches),
            layout.GridHeight, layout.GridWidth, keep >= layout.Patches ? -1 : radius);
    }

    /// <summary>True when each slot also holds its whole frame for the window search.</summary>
    public bool Windowed => Radius >= 0;

    /// <summary>
    /// Columns per block of the window's grids (B; see <see cref="ScoringGraphs"/>' window search). 2 does 1.2×
    /// the multiply-adds of 1 and gives each batched MatMul 2·R columns, where 1 gives it R; on the CPU provider
    /// the score graph ran fastest at 2 of 1, 2, 4 and 8 (docs/accelerator.md).
    /// </summary>
    public int Block => 2;

    /// <summary>Rows of a window grid: the frame's, zero-padded by r above and below (H + 2r).</summary>
    public int GridRows => Height + 2 * Radius;

    /// <summary>Column blocks of a window grid: W + 2r columns (r of zeros either side) rounded up to whole blocks.</summary>
    public int GridBlocks => (Width + 2 * Radius + Block - 1) / Block;

    /// <summary>The shape of one view's window grids, every slot's: [H + 2r, blocks, D_v, B, R] (slot innermost).</summary>
    public long[] GridDims(int view) => [GridRows, GridBlocks, Dims[view], Block, Capacity];

    /// <summary>Floats in one view's window grids, every slot's (the product of <see cref="GridDims"/>).</summary>
    public long GridLength(int view) => (long)GridRows * GridBlocks * Dims[view] * Block * Capacity;

    /// <summary>A key that tells shapes apart (records compare arrays by reference).</summary>
    public string Key => $"p{Patches}-{Height}x{Width}-d{string.Join('.', Dims)}-r{Capacity}-k{Keep}-n{TopN}-w{Radius}";
}

/// <summary>
/// The reservoir's scoring as ONNX graphs, built in code from the layout and the engine settings, so that
/// any backbone and tap set a site configures gets graphs of its own shapes (docs/decisions/0011). Fixed
/// shapes throughout, which TensorRT and the CUDA provider plan best; only <c>k</c>, the interval count,
/// varies (with the references a frame has) and is an input. No weights: the graphs hold three constants.
/// Every TopK asks for sorted values, though only their mean is taken: TensorRT 10's ONNX parser takes a
/// TopK only with <c>sorted</c> = 1 (docs/operators.md of onnx-tensorrt, 10.15), and a node it refuses
/// goes to the CUDA provider, cutting the graph into several TensorRT engines. The views graph, which runs
/// before them, is in ScoringGraphs.Views.cs.
/// </summary>
/// <remarks>
/// <para><b>score</b>. Inputs: <c>query_v</c> [P, D_v], the frame's view v; <c>reservoir_v</c> [R, D_v, K], the
/// kept rows of every slot at their levels (as the managed search holds them in bytes), transposed so that
/// one MatMul scores all slots; <c>excluded</c> [R, 1] bool, the
/// slots that may not score this frame (empty, its own entry); <c>k</c> [1] int64. Per view:
/// the query brought to its levels (<c>QueryLevels</c>), MatMul → [R, P, K]; ReduceMax over K (max-dot); sqrt(relu(2 − 2·dot)), the unit distance; excluded slots
/// set to +∞ by Where (not by an addition, so that a slot's uninitialised device memory cannot turn into a
/// NaN); TopK smallest k over R and their mean (the interval average). The views' mean is <c>patches</c>
/// [P]; the mean of its TopN largest is <c>image</c> [].</para>
/// <para>With a window of radius r, also <c>grid_v</c> [H + 2r, blocks, D_v, B, R], every slot's whole frame
/// zero-padded by r (and to whole blocks of B columns), at the levels the managed search holds it in (<see
/// cref="WindowGrid.Quantise"/>, applied by the kernel before the store graph), in blocks of B columns with the
/// slot innermost (<see cref="ScoringShape.GridDims"/>, <see cref="SlotGrid"/>): one batched MatMul of the
/// query's rows, stacked per block by offset, against every slot's block gives the dots of every offset (0
/// outside the grid), a Gather takes each patch's (2r + 1)², and the largest of those and of the kept rows'
/// ReduceMax is the max-dot.</para>
/// <para><b>store</b>. ScatterND writes one slot's rows (<c>rows_v</c> [1, D_v, K]) at <c>slot</c> [1, 1]
/// into <c>reservoir_v</c>; the kernel binds the output to the input's own device buffer, so only the slot
/// is written (<see cref="OnnxScoring.StoreInPlace"/>), and a frame that enters the reservoir goes to the
/// device once and stays there. With a window, <c>frame_v</c> [1, H, W, D_v] is zero-padded by Pad, laid
/// out in blocks and written into <c>grid_v</c> at the slot by ScatterElements on the slot axis.</para>
/// </remarks>
public static partial class ScoringGraphs
{
    /// <summary>ONNX opset the graphs use (TopK with k as an input, ReduceMax/ReduceMean with axes as attributes).</summary>
    public const int Opset = 13;

    /// <summary>The score graph of <paramref name="shape"/>, serialised.</summary>
    public static byte[] Score(ScoringShape shape)
    {
        var g = new GraphProto { Name = "edgeinspector_score" };
        g.Initializer.Add(Scalar("two", 2f));
        g.Initializer.Add(Scalar("infinity", float.PositiveInfinity));
        g.Initializer.Add(Int64s("top_n", shape.TopN));
        g.Input.Add(Value("excluded", TensorProto.Types.DataType.Bool, shape.Capacity, 1));
        g.Input.Add(Value("k", TensorProto.Types.DataType.Int64, 1));
        var means = new List<string>();
        for (int v = 0; v < shape.Dims.Length; v++)
        {
            int d = shape.Dims[v];
            g.Input.Add(Value($"query_{v}", TensorProto.Types.DataType.Float, shape.Patches, d));
            g.Input.Add(Value($"reservoir_{v}", TensorProto.Types.DataType.Float, shape.Capacity, d, shape.Keep));
            QueryLevels(g, v);
            g.Node.Add(Node("MatMul", [$"query_quantised_{v}", $"reservoir_{v}"], [$"dots_{v}"]));
            g.Node.Add(Node("ReduceMax", [$"dots_{v}"], [shape.Windowed ? $"kept_best_{v}" : $"best_{v}"], Ints("axes", 2), Int("keepdims", 0)));
            if (shape.Windowed) Window(g, shape, v);
            g.Node.Add(Node("Mul", ["two", $"best_{v}"], [$"twice_{v}"]));
            g.Node.Add(Node("Sub", ["two", $"twice_{v}"], [$"gap_{v}"]));
            g.Node.Add(Node("Relu", [$"gap_{v}"], [$"gap_pos_{v}"]));
            g.Node.Add(Node("Sqrt", [$"gap_pos_{v}"], [$"dist_{v}"]));
            g.Node.Add(Node("Where", ["excluded", "infinity", $"dist_{v}"], [$"masked_{v}"]));
            g.Node.Add(Node("TopK", [$"masked_{v}", "k"], [$"low_{v}", $"low_index_{v}"], Int("axis", 0), Int("largest", 0), Int("sorted", 1)));
            g.Node.Add(Node("ReduceMean", [$"low_{v}"], [$"interval_{v}"], Ints("axes", 0), Int("keepdims", 0)));
            means.Add($"interval_{v}");
        }
        g.Initializer.Add(Scalar("views", shape.Dims.Length));
        g.Node.Add(Node("Sum", [.. means], ["view_sum"]));
        g.Node.Add(Node("Div", ["view_sum", "views"], ["patches"]));
        g.Node.Add(Node("TopK", ["patches", "top_n"], ["top", "top_index"], Int("axis", 0), Int("largest", 1), Int("sorted", 1)));
        g.Node.Add(Node("ReduceMean", ["top"], ["image"], Ints("axes", 0), Int("keepdims", 0)));
        g.Output.Add(Value("patches", TensorProto.Types.DataType.Float, shape.Patches));
        g.Output.Add(Value("image", TensorProto.Types.DataType.Float));
        return Model(g);
    }

    /// <summary>
    /// <c>query_quantised_v</c>: view <paramref name="v"/> of the query at its levels, as the managed search takes
    /// it (<see cref="WindowQuery"/>) for both the kept rows and the window: step = largest magnitude / 63 (63
    /// where every value is 0, a step of 1), level = clip(round(x · (1 / step)), ±63), value = level · step. The
    /// same float operations in the same order, so both paths round to the same levels.
    /// </summary>
    private static void QueryLevels(GraphProto g, int v)
    {
        if (v == 0)
        {
            g.Initializer.Add(Scalar("zero", 0f));
            g.Initializer.Add(Scalar("one", 1f));
            g.Initializer.Add(Scalar("levels", WindowGrid.Levels));
            g.Initializer.Add(Scalar("minus_levels", -WindowGrid.Levels));
        }
        g.Node.Add(Node("Abs", [$"query_{v}"], [$"query_abs_{v}"]));
        g.Node.Add(Node("ReduceMax", [$"query_abs_{v}"], [$"query_max_{v}"], Int("keepdims", 0)));
        g.Node.Add(Node("Greater", [$"query_max_{v}", "zero"], [$"query_nonzero_{v}"]));
        g.Node.Add(Node("Where", [$"query_nonzero_{v}", $"query_max_{v}", "levels"], [$"query_span_{v}"]));
        g.Node.Add(Node("Div", [$"query_span_{v}", "levels"], [$"query_step_{v}"]));
        g.Node.Add(Node("Div", ["one", $"query_step_{v}"], [$"query_inverse_{v}"]));
        g.Node.Add(Node("Mul", [$"query_{v}", $"query_inverse_{v}"], [$"query_scaled_{v}"]));
        g.Node.Add(Node("Round", [$"query_scaled_{v}"], [$"query_rounded_{v}"]));
        g.Node.Add(Node("Clip", [$"query_rounded_{v}", "minus_levels", "levels"], [$"query_level_{v}"]));
        g.Node.Add(Node("Mul", [$"query_level_{v}", $"query_step_{v}"], [$"query_quantised_{v}"]));
    }

    /// <summary>
    /// The window search of view <paramref name="v"/>: <c>best_v</c> [R, P] = the largest of <c>kept_best_v</c>
    /// and, for each offset, the dot of every query patch with the slot's patch at that offset.
    /// </summary>
    /// <remarks>
    /// <para>One batched MatMul for all (2r + 1)² offsets, so that no [R, P, D] product is ever written. The
    /// grids are held in column blocks of B, slot innermost: <c>grid_v</c> [H + 2r, blocks, D, B, R], read as
    /// [H + 2r, blocks, D, B·R], is for each padded row and block one matrix of every slot's B columns. A
    /// block's columns are within r of only B + 2r query columns, so the query is stacked per padded row Y'
    /// and block as its rows Y' − dy (dy = 0…2r) at those columns: [H + 2r, blocks, (2r + 1)(B + 2r), D],
    /// zeros outside the grid. The MatMul of the two gives, per row and block, every dot the window can need
    /// of every slot at once, and a Gather takes each patch's (2r + 1)² (<see cref="WindowIndices"/>).</para>
    /// <para>It does (H + 2r)·blocks·B·(B + 2r) / (H·W·(2r + 1)) times the multiply-adds the window needs
    /// (1.6× at 28×28, r = 2, B = 2) and reads each grid once. Rows against the query's whole rows, with no
    /// blocks, did 7.3×; a Slice, a Mul and a ReduceSum per offset wrote and read (2r + 1)² slot-sized
    /// products, which a GPU pays for with its memory bandwidth, not its arithmetic.</para>
    /// </remarks>
    private static void Window(GraphProto g, ScoringShape shape, int v)
    {
        int d = shape.Dims[v], h = shape.Height, w = shape.Width, r = shape.Radius, span = 2 * r + 1;
        int hp = shape.GridRows, blocks = shape.GridBlocks, b = shape.Block, cols = b + 2 * r;
        if (v == 0)
        {
            // The query's grid padded so that padded [a, c] is query [a − 2r, c − 2r]: 2r rows either side,
            // 2r columns on the left and up to the last block's end on the right.
            g.Initializer.Add(Int64s("window_query_pads", 2 * r, 2 * r, 0, 2 * r, (long)blocks * b - w, 0));
            g.Initializer.Add(Int64s("window_row_axis", 0));
            g.Initializer.Add(Int64s("window_columns", BlockColumns(blocks, b, cols), blocks, cols));
            for (int dy = 0; dy < span; dy++)
            {
                g.Initializer.Add(Int64s($"window_band_start_{dy}", 2 * r - dy));
                g.Initializer.Add(Int64s($"window_band_end_{dy}", 2 * r - dy + hp));
            }
            g.Initializer.Add(Int64s("window_flat", (long)hp * blocks * span * cols * b, shape.Capacity));
            g.Initializer.Add(Int64s("window_index", WindowIndices(shape), shape.Patches, span * span));
        }
        g.Input.Add(Value($"grid_{v}", TensorProto.Types.DataType.Float, shape.GridDims(v)));
        g.Initializer.Add(Int64s($"grid_matrix_shape_{v}", hp, blocks, d, (long)b * shape.Capacity));
        g.Initializer.Add(Int64s($"query_grid_shape_{v}", h, w, d));
        g.Node.Add(Node("Reshape", [$"query_quantised_{v}", $"query_grid_shape_{v}"], [$"query_grid_{v}"]));
        g.Node.Add(Node("Pad", [$"query_grid_{v}", "window_query_pads"], [$"query_padded_{v}"]));
        g.Node.Add(Node("Gather", [$"query_padded_{v}", "window_columns"], [$"query_blocks_{v}"], Int("axis", 1)));
        var bands = new string[span];
        for (int dy = 0; dy < span; dy++)
        {
            bands[dy] = $"query_band_{v}_{dy}";
            g.Node.Add(Node("Slice", [$"query_blocks_{v}", $"window_band_start_{dy}", $"window_band_end_{dy}", "window_row_axis"], [bands[dy]]));
        }
        g.Node.Add(Node("Concat", bands, [$"query_stack_{v}"], Int("axis", 2)));
        g.Node.Add(Node("Reshape", [$"grid_{v}", $"grid_matrix_shape_{v}"], [$"grid_matrix_{v}"]));
        g.Node.Add(Node("MatMul", [$"query_stack_{v}", $"grid_matrix_{v}"], [$"band_dots_{v}"]));
        g.Node.Add(Node("Reshape", [$"band_dots_{v}", "window_flat"], [$"band_flat_{v}"]));
        g.Node.Add(Node("Gather", [$"band_flat_{v}", "window_index"], [$"window_dots_{v}"], Int("axis", 0)));
        g.Node.Add(Node("ReduceMax", [$"window_dots_{v}"], [$"window_best_pr_{v}"], Ints("axes", 1), Int("keepdims", 0)));
        g.Node.Add(Node("Transpose", [$"window_best_pr_{v}"], [$"window_best_{v}"], Ints("perm", 1, 0)));
        g.Node.Add(Node("Max", [$"kept_best_{v}", $"window_best_{v}"], [$"best_{v}"]));
    }

    /// <summary>
    /// [P, (2r + 1)²]: the row of each query patch's dot at each offset in the window MatMul's output, flattened
    /// to [(H + 2r)·blocks·(2r + 1)·(B + 2r)·B, R] (see <see cref="Window"/>). Patch (y, x) at offset (dy, dx)
    /// meets padded row Y' = y + dy, column X' = x + dx: block X' / B, column X' mod B of it, query band dy,
    /// and the query's column x, which is column x − B·block + 2r of that block's B + 2r.
    /// </summary>
    internal static long[] WindowIndices(ScoringShape shape)
    {
        int h = shape.Height, w = shape.Width, r = shape.Radius, span = 2 * r + 1, b = shape.Block, cols = b + 2 * r, blocks = shape.GridBlocks;
        var index = new long[h * w * span * span];
        int i = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int dy = 0; dy < span; dy++)
                    for (int dx = 0; dx < span; dx++)
                    {
                        int row = y + dy, column = x + dx, block = column / b;
                        index[i++] = ((((long)row * blocks + block) * span + dy) * cols + (x - block * b + 2 * r)) * b + column % b;
                    }
        return index;
    }

    /// <summary>[blocks, B + 2r]: block k's query columns in the padded query, B·k onwards.</summary>
    private static long[] BlockColumns(int blocks, int b, int cols)
    {
        var columns = new long[blocks * cols];
        for (int k = 0; k < blocks; k++)
            for (int j = 0; j < cols; j++) columns[k * cols + j] = (long)k * b + j;
        return columns;
    }

    /// <summary>
    /// One frame's levels of view <paramref name="view"/> ([H, W, D], row-major) written into <paramref name="grid"/>
    /// (<see cref="ScoringShape.GridDims"/>, row-major) at <paramref name="slot"/>, as the store graph writes
    /// them; the padding is left as it is (zeros in a new buffer).
    /// </summary>
    public static void SlotGrid(ScoringShape shape, int view, ReadOnlySpan<float> levels, int slot, Span<float> grid)
    {
        int h = shape.Height, w = shape.Width, r = shape.Radius, b = shape.Block, blocks = shape.GridBlocks, cap = shape.Capacity, dim = shape.Dims[view];
        if (!shape.Windowed) throw new InvalidOperationException("This shape searches no window.");
        if (levels.Length < h * w * dim || grid.Length < shape.GridLength(view)) throw new ArgumentException($"A [{h}, {w}, {dim}] frame into [{string.Join(", ", shape.GridDims(view))}] grids.");
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int row = y + r, column = x + r, block = column / b, inBlock = column % b;
                long at = (((long)row * blocks + block) * dim * b + inBlock) * cap + slot;
                for (int k = 0; k < dim; k++) grid[(int)(at + (long)k * b * cap)] = levels[(y * w + x) * dim + k];
            }
    }

    /// <summary>
    /// One slot's rows as the graphs hold them: <paramref name="count"/> rows of width <paramref name="dim"/>
    /// (row-major) written transposed into <paramref name="slot"/> ([D, K]); a frame with fewer than
    /// <paramref name="keep"/> rows repeats its first, which changes no maximum.
    /// </summary>
    public static void SlotRows(ReadOnlySpan<float> rows, int count, int dim, int keep, Span<float> slot)
    {
        if (count < 1 || count > keep) throw new ArgumentOutOfRangeException(nameof(count), count, $"A slot holds 1 to {keep} rows.");
        if (rows.Length < count * dim || slot.Length < dim * keep) throw new ArgumentException($"{count} rows of {dim} into a [{dim}, {keep}] slot need {count * dim} and {dim * keep} floats.");
        for (int c = 0; c < keep; c++)
        {
            int from = (c < count ? c : 0) * dim;
            for (int j = 0; j < dim; j++) slot[j * keep + c] = rows[from + j];
        }
    }

    /// <summary>The store graph of <paramref name="shape"/>, serialised.</summary>
    public static byte[] Store(ScoringShape shape)
    {
        var g = new GraphProto { Name = "edgeinspector_store" };
        g.Input.Add(Value("slot", TensorProto.Types.DataType.Int64, 1, 1));
        int r = shape.Radius, h = shape.Height, w = shape.Width, hp = shape.GridRows, blocks = shape.GridBlocks, b = shape.Block;
        if (shape.Windowed)
        {
            // The frame zero-padded to the grid's rows and whole blocks, then each block's columns after its D.
            g.Initializer.Add(Int64s("pads", 0, r, r, 0, 0, r, (long)blocks * b - w - r, 0));
            g.Initializer.Add(Int64s("slot_cell", 1, 1, 1, 1, 1));
            g.Node.Add(Node("Reshape", ["slot", "slot_cell"], ["slot_one"]));
        }
        for (int v = 0; v < shape.Dims.Length; v++)
        {
            int d = shape.Dims[v];
            g.Input.Add(Value($"reservoir_{v}", TensorProto.Types.DataType.Float, shape.Capacity, d, shape.Keep));
            g.Input.Add(Value($"rows_{v}", TensorProto.Types.DataType.Float, 1, d, shape.Keep));
            g.Node.Add(Node("ScatterND", [$"reservoir_{v}", "slot", $"rows_{v}"], [$"updated_{v}"]));
            g.Output.Add(Value($"updated_{v}", TensorProto.Types.DataType.Float, shape.Capacity, d, shape.Keep));
            if (!shape.Windowed) continue;
            g.Input.Add(Value($"grid_{v}", TensorProto.Types.DataType.Float, shape.GridDims(v)));
            g.Input.Add(Value($"frame_{v}", TensorProto.Types.DataType.Float, 1, h, w, d));
            g.Initializer.Add(Int64s($"frame_blocks_{v}", hp, blocks, b, d));
            g.Initializer.Add(Int64s($"frame_cells_{v}", hp, blocks, d, b, 1));
            g.Node.Add(Node("Pad", [$"frame_{v}", "pads"], [$"padded_{v}"]));
            g.Node.Add(Node("Reshape", [$"padded_{v}", $"frame_blocks_{v}"], [$"blocked_{v}"]));
            g.Node.Add(Node("Transpose", [$"blocked_{v}"], [$"blocked_t_{v}"], Ints("perm", 0, 1, 3, 2)));
            g.Node.Add(Node("Reshape", [$"blocked_t_{v}", $"frame_cells_{v}"], [$"cells_{v}"]));
            g.Node.Add(Node("Expand", ["slot_one", $"frame_cells_{v}"], [$"slot_cells_{v}"]));
            g.Node.Add(Node("ScatterElements", [$"grid_{v}", $"slot_cells_{v}", $"cells_{v}"], [$"updated_grid_{v}"], Int("axis", 4)));
            g.Output.Add(Value($"updated_grid_{v}", TensorProto.Types.DataType.Float, shape.GridDims(v)));
        }
        return Model(g);
    }

    private static byte[] Model(GraphProto graph)
    {
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "edgeinspector",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model.ToByteArray();
    }

    private static NodeProto Node(string op, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = $"{op}_{outputs[0]}" };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attributes);
        return n;
    }

    private static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    private static TensorProto Scalar(string name, float value)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.FloatData.Add(value);
        return t;
    }

    private static AttributeProto Str(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    private static TensorProto Floats(string name, float[] values, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        t.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        return t;
    }

    private static TensorProto Int64s(string name, params long[] values) => Int64s(name, values, values.Length);

    /// <summary>An int64 constant of shape <paramref name="dims"/>, <paramref name="values"/> row-major.</summary>
    private static TensorProto Int64s(string name, long[] values, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.AddRange(dims);
        t.Int64Data.AddRange(values);
        return t;
    }

    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, params long[] dims) => Value(name, type, dims, false);

    /// <summary>A value whose first dimension is the free batch, then <paramref name="dims"/>.</summary>
    private static ValueInfoProto Batched(string name, TensorProto.Types.DataType type, params long[] dims) => Value(name, type, dims, true);

    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, long[] dims, bool batch)
    {
        var shape = new TensorShapeProto();
        if (batch) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}

