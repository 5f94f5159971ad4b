using System.Text;

namespace EdgeInspector.Benchmarks;

/// <summary>
/// Writes a one-node ONNX model, C = MatMul(A, B) with dynamic shapes, as raw protobuf: the benchmark
/// needs ONNX Runtime's own GEMM on the kernel's shapes, and no ONNX builder is available offline.
/// </summary>
internal static class MatMulModel
{
    public static byte[] Build()
    {
        var node = Msg(Str(1, "A"), Str(1, "B"), Str(2, "C"), Str(4, "MatMul"));
        var graph = Msg(Field(1, node), Str(2, "matmul"),
            Field(11, ValueInfo("A", "M", "K")), Field(11, ValueInfo("B", "K", "N")), Field(12, ValueInfo("C", "M", "N")));
        var opset = Msg(Str(1, ""), VarintField(2, 13));
        return Msg(VarintField(1, 8), Field(8, opset), Field(7, graph));
    }

    private static byte[] ValueInfo(string name, string rows, string cols)
    {
        var shape = Msg(Field(1, Msg(Str(2, rows))), Field(1, Msg(Str(2, cols))));
        var tensor = Msg(VarintField(1, 1), Field(2, shape)); // elem_type 1 = float
        return Msg(Str(1, name), Field(2, Msg(Field(1, tensor))));
    }

    private static byte[] Msg(params byte[][] fields) => fields.SelectMany(f => f).ToArray();

    private static byte[] Str(int field, string s) => Field(field, Encoding.UTF8.GetBytes(s));

    private static byte[] Field(int field, byte[] payload) => [.. Varint((ulong)(field << 3 | 2)), .. Varint((ulong)payload.Length), .. payload];

    private static byte[] VarintField(int field, ulong value) => [.. Varint((ulong)(field << 3)), .. Varint(value)];

    private static byte[] Varint(ulong v)
    {
        var bytes = new List<byte>();
        do
        {
            byte b = (byte)(v & 0x7F);
            v >>= 7;
            if (v != 0) b |= 0x80;
            bytes.Add(b);
        }
        while (v != 0);
        return [.. bytes];
    }
}
