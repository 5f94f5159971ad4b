using System.Text;

namespace EdgeInspector.Testing;

/// <summary>
/// Writes tiny ONNX models as raw protobuf (no ONNX builder is available offline): a MatMul for the
/// kernel benchmark, and fixed-shape models for the backbone's error tests. A dimension is an int
/// (fixed) or a string (named, dynamic).
/// </summary>
internal static class OnnxModelWriter
{
    /// <summary>C = MatMul(A, B) with dynamic M, K, N.</summary>
    public static byte[] MatMul() => Model(
        Msg(Str(1, "A"), Str(1, "B"), Str(2, "C"), Str(4, "MatMul")),
        [("A", ["M", "K"]), ("B", ["K", "N"])], [("C", ["M", "N"])]);

    /// <summary>One node copying <paramref name="input"/> to <paramref name="output"/>, with the given shape.</summary>
    public static byte[] Identity(string input, string output, object[] shape) => Model(
        Msg(Str(1, input), Str(2, output), Str(4, "Identity")),
        [(input, shape)], [(output, shape)]);

    private static byte[] Model(byte[] node, (string Name, object[] Dims)[] inputs, (string Name, object[] Dims)[] outputs)
    {
        var fields = new List<byte[]> { Field(1, node), Str(2, "g") };
        foreach (var (name, dims) in inputs) fields.Add(Field(11, ValueInfo(name, dims)));
        foreach (var (name, dims) in outputs) fields.Add(Field(12, ValueInfo(name, dims)));
        var graph = Msg([.. fields]);
        var opset = Msg(Str(1, ""), VarintField(2, 13));
        return Msg(VarintField(1, 8), Field(8, opset), Field(7, graph));
    }

    private static byte[] ValueInfo(string name, object[] dims)
    {
        var shape = Msg(dims.Select(d => Field(1, d is string p ? Msg(Str(2, p)) : Msg(VarintField(1, (ulong)Convert.ToInt64(d))))).ToArray());
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
