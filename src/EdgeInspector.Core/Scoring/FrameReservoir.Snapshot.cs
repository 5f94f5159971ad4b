using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>What a snapshot of the reservoir reads (<see cref="Export"/>) and takes up (<see cref="Import"/>).</summary>
public sealed partial class FrameReservoir
{
    /// <summary>
    /// The frames held, oldest first, as kept: what a snapshot of the engine stores. Each frame's rows are
    /// unpacked when it is read, not now: a held frame is never changed once added, so the list stays
    /// what the reservoir held at this call, and a snapshot writer on another thread unpacks one frame at
    /// a time instead of a copy of the whole reservoir (about 150 MB of floats at the defaults), or reads
    /// each view's levels as held (<see cref="IHeldFrames"/>) and unpacks nothing. The values are the
    /// levels the search holds; imported, they give the same bytes (<see cref="WindowGrid.StepOf"/>).
    /// </summary>
    public IReadOnlyList<ReservoirFrame> Export()
    {
        var entries = new Entry[Count];
        for (int t = 0; t < Count; t++) entries[t] = Oldest(t);
        return new Exported(entries);
    }

    /// <summary>Held entries, unpacked on access, or read as held (<see cref="IHeldFrames"/>).</summary>
    private sealed class Exported(Entry[] entries) : IHeldFrames
    {
        public int Count => entries.Length;

        public long IdOf(int index) => entries[index].Id;

        public int[]? KeptOf(int index) => entries[index].Grids is null ? null : (int[])entries[index].Kept.Clone();

        public int ViewsOf(int index) => entries[index].Rows.Length;

        public int LengthOf(int index, int view)
        {
            var e = entries[index];
            return e.Grids is { } g ? g[view].Height * g[view].Width * g[view].Dim : e.Rows[view].Count * e.Rows[view].Dim;
        }

        public float CopyLevels(int index, int view, Span<sbyte> levels)
        {
            var e = entries[index];
            if (e.Grids is { } g)
            {
                g[view].CopyLevels(levels);
                return g[view].Step;
            }
            e.Rows[view].CopyLevels(levels);
            return e.Rows[view].Step;
        }

        public ReservoirFrame this[int index]
        {
            get
            {
                var e = entries[index];
                return FrameRows(e) is { } whole ? new ReservoirFrame(e.Id, whole, (int[])e.Kept.Clone()) : new ReservoirFrame(e.Id, KeptValues(e));
            }
        }

        public IEnumerator<ReservoirFrame> GetEnumerator()
        {
            for (int i = 0; i < entries.Length; i++) yield return this[i];
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>
    /// Throws unless <paramref name="frame"/> has this reservoir's views and a whole number of rows in each:
    /// at most <see cref="Keep"/> kept rows, or, for a reservoir with a window, the frame's every patch and
    /// the indices of at most <see cref="Keep"/> of them.
    /// </summary>
    public void Validate(ReservoirFrame frame)
    {
        if (_radius >= 0 && frame.Kept is null) throw new ArgumentException($"Frame {frame.Id}: only its kept patches are given; this reservoir searches whole frames in a window and needs every patch.", nameof(frame));
        if (frame.Rows.Length != _layout.Views.Count) throw new ArgumentException($"Frame {frame.Id}: {frame.Rows.Length} views, this layout has {_layout.Views.Count}.", nameof(frame));
        int rows = -1;
        for (int v = 0; v < frame.Rows.Length; v++)
        {
            int d = _layout.Views[v].Dim;
            if (frame.Rows[v].Length == 0 || frame.Rows[v].Length % d != 0) throw new ArgumentException($"Frame {frame.Id}, view {v}: {frame.Rows[v].Length} floats is not a whole number of rows of {d}.", nameof(frame));
            int n = frame.Rows[v].Length / d;
            if (rows >= 0 && n != rows) throw new ArgumentException($"Frame {frame.Id}: view {v} holds {n} patches, view 0 {rows}.", nameof(frame));
            rows = n;
        }
        if (frame.Kept is null)
        {
            if (rows > Keep) throw new ArgumentException($"Frame {frame.Id}: {rows} patches kept, this reservoir keeps {Keep}.", nameof(frame));
            return;
        }
        if (rows != _layout.Patches) throw new ArgumentException($"Frame {frame.Id}: {rows} patches, a whole frame of this layout has {_layout.Patches}.", nameof(frame));
        if (frame.Kept.Length == 0 || frame.Kept.Length > Keep) throw new ArgumentException($"Frame {frame.Id}: {frame.Kept.Length} patches kept, this reservoir keeps 1 to {Keep}.", nameof(frame));
        var seen = new HashSet<int>();
        foreach (int i in frame.Kept)
        {
            if (i < 0 || i >= rows || !seen.Add(i)) throw new ArgumentException($"Frame {frame.Id}: kept patch index {i} is outside 0..{rows - 1} or repeated.", nameof(frame));
        }
    }

    /// <summary>Adds a frame as exported by <see cref="Export"/> (a warm restart): no selection, the rows are kept as they are.</summary>
    public void Import(ReservoirFrame frame)
    {
        Validate(frame);
        if (frame.Kept is { } kept)
        {
            Insert(Make(frame.Id, frame.Rows, (int[])kept.Clone()), _radius >= 0 ? frame.Rows : null);
            return;
        }
        int count = frame.Rows[0].Length / _layout.Views[0].Dim;
        var indices = new int[count];
        for (int i = 0; i < count; i++) indices[i] = i;
        var rows = new KeptRows[frame.Rows.Length];
        for (int v = 0; v < rows.Length; v++) rows[v] = KeptRows.Pack(frame.Rows[v], count, _layout.Views[v].Dim);
        Insert(new Entry(frame.Id, rows, indices, null), null);
    }
}

/// <summary>
/// Reservoir frames as held (what <see cref="FrameReservoir.Export"/> gives), each view also readable as the
/// levels the search holds (−63…63 of a step) without unpacking the frame into floats: what a snapshot stores.
/// Why: a whole frame unpacked is six arrays of 400 KB at the defaults, on the large object heap, and a
/// snapshot of 64 frames made 150 MB of them every minute for the collector.
/// </summary>
public interface IHeldFrames : IReadOnlyList<ReservoirFrame>
{
    /// <summary>Frame <paramref name="index"/>'s id.</summary>
    long IdOf(int index);

    /// <summary>Its kept patches' indices (a copy) when its rows are the whole frame; null when they are the kept patches themselves.</summary>
    int[]? KeptOf(int index);

    /// <summary>Its views.</summary>
    int ViewsOf(int index);

    /// <summary>Values in its view <paramref name="view"/> (rows × dim).</summary>
    int LengthOf(int index, int view);

    /// <summary>Its view <paramref name="view"/>'s levels, row-major, into <paramref name="levels"/>; returns the step (a value is its level × the step).</summary>
    float CopyLevels(int index, int view, Span<sbyte> levels);
}

/// <summary>Reservoir frames read as <see cref="IHeldFrames"/>, whoever holds them.</summary>
public static class HeldFrames
{
    /// <summary>
    /// <paramref name="frames"/> as held: a reservoir's export as it is, any other list (a snapshot read back) with
    /// each view brought to its levels as a reservoir would hold it (<see cref="Numerics.WindowGrid.ToLevels"/>).
    /// </summary>
    public static IHeldFrames Of(IReadOnlyList<ReservoirFrame> frames) => frames as IHeldFrames ?? new Given(frames);

    private sealed class Given(IReadOnlyList<ReservoirFrame> frames) : IHeldFrames
    {
        public int Count => frames.Count;

        public ReservoirFrame this[int index] => frames[index];

        public long IdOf(int index) => frames[index].Id;

        public int[]? KeptOf(int index) => (int[]?)frames[index].Kept?.Clone();

        public int ViewsOf(int index) => frames[index].Rows.Length;

        public int LengthOf(int index, int view) => frames[index].Rows[view].Length;

        public float CopyLevels(int index, int view, Span<sbyte> levels) => Numerics.WindowGrid.ToLevels(frames[index].Rows[view], levels);

        public IEnumerator<ReservoirFrame> GetEnumerator() => frames.GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
