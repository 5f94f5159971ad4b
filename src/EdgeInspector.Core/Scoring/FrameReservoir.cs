using System.Buffers;
using EdgeInspector.Core.Coreset;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>
/// A reservoir of recent accepted frames (spec §6.1's K_ref), each compressed to a k-center subset of its
/// patches, that scores a patch the way MuSc does: its nearest distance within each reservoir frame, then
/// the mean of the lowest <see cref="EngineOptions.IntervalFraction"/> of those (the interval average), per
/// view, fused by the mean over views.
/// </summary>
/// <remarks>
/// Why: a coreset's nearest element is a minimum over the union of every frame it came from, so a pattern
/// that recurs in a few percent of the frames (magnetic tile's "uneven" surface) always finds a close
/// element and scores as normal. MuSc asks whether the pattern is in 30% of the frames. Keeping frames
/// apart, even subsampled, keeps that question answerable at a coreset's cost: R frames × k patches are
/// as many references as a coreset of R·k elements. A frame's own entry never scores it.
/// Not thread-safe; frames may be scored on several threads while no <see cref="Add"/> runs.
/// </remarks>
public sealed class FrameReservoir : IDisposable
{
    private readonly FeatureLayout _layout;
    private readonly SparseProjection _projection;
    private readonly double _fraction;
    private readonly Entry?[] _entries;
    private readonly IReservoirKernel? _kernel;
    private int _next;

    private sealed record Entry(long Id, PackedPanels[] Views);

    /// <summary>Where <c>Score</c>'s loop over views runs (see <see cref="ReservoirEngine.Parallelism"/>).</summary>
    public ParallelOptions Parallelism { get; set; } = new();

    /// <summary>
    /// Creates an empty reservoir of <paramref name="capacity"/> frames, keeping <paramref name="keep"/> patches
    /// of each. With <paramref name="kernel"/> (made for this capacity and keep), frames are scored there and
    /// every slot written is mirrored to it; otherwise by the managed kernel.
    /// </summary>
    public FrameReservoir(FeatureLayout layout, SparseProjection projection, int capacity, int keep, double fraction, IReservoirKernel? kernel = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        _layout = layout;
        _projection = projection;
        _fraction = fraction;
        _entries = new Entry?[capacity];
        Keep = Math.Min(keep, layout.Patches);
        _kernel = kernel;
    }

    /// <summary>Frees the kernel's copy of the reservoir, if any.</summary>
    public void Dispose() => _kernel?.Dispose();

    /// <summary>The scoring path that runs: "managed", or the kernel's.</summary>
    public string ScoringPath => _kernel?.Path ?? global::EdgeInspector.Core.Scoring.ScoringPath.Managed;

    /// <summary>Patches kept of each frame.</summary>
    public int Keep { get; }

    /// <summary>Frames held now.</summary>
    public int Count { get; private set; }

    /// <summary>Most frames held; the oldest goes when a frame is added to a full reservoir.</summary>
    public int Capacity => _entries.Length;

    /// <summary>Bytes one frame takes in a reservoir of <paramref name="layout"/> that keeps <paramref name="keep"/> of its patches.</summary>
    public static long BytesPerFrame(FeatureLayout layout, int keep)
    {
        long bytes = 0;
        foreach (var v in layout.Views) bytes += PackedPanels.BytesFor(Math.Min(keep, layout.Patches), v.Dim);
        return bytes;
    }

    /// <summary>Bytes held by the frames in the reservoir now.</summary>
    public long HeldBytes
    {
        get
        {
            long bytes = 0;
            foreach (var e in _entries)
            {
                if (e is null) continue;
                foreach (var v in e.Views) bytes += v.AllocatedBytes;
            }
            return bytes;
        }
    }

    /// <summary>The slot of the t-th oldest frame held (t below <see cref="Count"/>): the ring's slots in age order.</summary>
    private int SlotOf(int t) => (_next - Count + t + Capacity) % Capacity;

    /// <summary>The t-th oldest frame held.</summary>
    private Entry Oldest(int t) => _entries[SlotOf(t)]!;

    /// <summary>An entry's kept rows per view, unpacked (row-major, copies).</summary>
    private static float[][] Rows(Entry e)
    {
        var rows = new float[e.Views.Length][];
        for (int v = 0; v < rows.Length; v++)
        {
            rows[v] = new float[e.Views[v].Count * e.Views[v].Dim];
            e.Views[v].CopyRows(rows[v]);
        }
        return rows;
    }

    /// <summary>Ids of the frames held, oldest first.</summary>
    public long[] Ids()
    {
        var ids = new long[Count];
        for (int t = 0; t < Count; t++) ids[t] = Oldest(t).Id;
        return ids;
    }

    /// <summary>Drops the frames whose id <paramref name="drop"/> selects; the others keep their order. Returns how many went.</summary>
    public int RemoveWhere(Func<long, bool> drop)
    {
        var kept = new List<Entry>(Count);
        for (int t = 0; t < Count; t++)
        {
            var e = Oldest(t);
            if (!drop(e.Id)) kept.Add(e);
        }
        int removed = Count - kept.Count;
        Clear();
        foreach (var e in kept) Insert(e, null);
        return removed;
    }

    /// <summary>Drops every frame.</summary>
    public void Clear()
    {
        Array.Clear(_entries);
        Count = 0;
        _next = 0;
    }

    /// <summary>
    /// Adds <paramref name="frame"/> (copies what it keeps: the frame can be released afterwards). Its
    /// patches are thinned by k-center on the fixed selection projection, so the subset covers the frame's
    /// appearance rather than a region of it.
    /// </summary>
    public void Add(FrameFeatures frame, long id)
    {
        int p = _layout.Patches, pd = _projection.OutputDim;
        int[] chosen;
        if (Keep >= p)
        {
            chosen = new int[p];
            for (int q = 0; q < p; q++) chosen[q] = q;
        }
        else
        {
            var projected = ArrayPool<float>.Shared.Rent(p * pd);
            try
            {
                for (int q = 0; q < p; q++) _projection.Project(frame, q, projected.AsSpan(q * pd, pd));
                chosen = KCenterGreedy.Select(projected.AsSpan(0, p * pd), pd, Keep, start: 0);
            }
            finally
            {
                ArrayPool<float>.Shared.Return(projected);
            }
        }
        var views = new PackedPanels[frame.Views.Length];
        var kept = new float[views.Length][];
        for (int v = 0; v < views.Length; v++)
        {
            int d = _layout.Views[v].Dim;
            var rows = new float[chosen.Length * d];
            for (int c = 0; c < chosen.Length; c++) frame.Views[v].AsSpan(chosen[c] * d, d).CopyTo(rows.AsSpan(c * d, d));
            views[v] = PackedPanels.Pack(rows, d);
            kept[v] = rows;
        }
        Insert(new Entry(id, views), kept);
    }

    /// <summary>The frames held, oldest first, as kept (copies): what a snapshot of the engine stores.</summary>
    public ReservoirFrame[] Export()
    {
        var frames = new ReservoirFrame[Count];
        for (int t = 0; t < Count; t++)
        {
            var e = Oldest(t);
            frames[t] = new ReservoirFrame(e.Id, Rows(e));
        }
        return frames;
    }

    /// <summary>Throws unless <paramref name="frame"/> has this reservoir's views and a whole number of rows in each, at most <see cref="Keep"/>.</summary>
    public void Validate(ReservoirFrame frame)
    {
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
        if (rows > Keep) throw new ArgumentException($"Frame {frame.Id}: {rows} patches kept, this reservoir keeps {Keep}.", nameof(frame));
    }

    /// <summary>Adds a frame as exported by <see cref="Export"/> (a warm restart): no selection, the rows are kept as they are.</summary>
    public void Import(ReservoirFrame frame)
    {
        Validate(frame);
        var views = new PackedPanels[frame.Rows.Length];
        for (int v = 0; v < views.Length; v++) views[v] = PackedPanels.Pack(frame.Rows[v], _layout.Views[v].Dim);
        Insert(new Entry(frame.Id, views), frame.Rows);
    }

    /// <summary>Puts <paramref name="entry"/> in the next slot, and its rows (unpacked, if at hand) into the kernel's copy of that slot.</summary>
    private void Insert(Entry entry, IReadOnlyList<float[]>? rows)
    {
        _entries[_next] = entry;
        _kernel?.Store(_next, rows ?? Rows(entry), entry.Views[0].Count);
        _next = (_next + 1) % Capacity;
        Count = Math.Min(Count + 1, Capacity);
    }

    /// <summary>
    /// Fused interval-average scores of <paramref name="frame"/>'s patches against every held frame except
    /// the one with id <paramref name="id"/>. Returns false (scores untouched) when fewer than one other
    /// frame is held. <paramref name="sources"/>, if given, receives the ids of the frames that scored it,
    /// oldest first (what an audit of the verdict needs). With <paramref name="part"/>, every held entry of
    /// the same part as <paramref name="id"/> is left out too.
    /// </summary>
    public bool Score(FrameFeatures frame, long id, Span<float> scores, List<long>? sources = null, Func<long, long>? part = null) =>
        Score(frame, id, scores, 1, out _, sources, part);

    /// <summary>
    /// <see cref="Score(FrameFeatures, long, Span{float}, List{long}?, Func{long, long}?)"/>, and the image
    /// score: the mean of the <paramref name="topN"/> largest patch scores. Runs on the kernel when there is one.
    /// </summary>
    public bool Score(FrameFeatures frame, long id, Span<float> scores, int topN, out float image, List<long>? sources = null, Func<long, long>? part = null)
    {
        int p = _layout.Patches, views = frame.Views.Length;
        var refs = new List<Entry>(Count);
        Span<bool> included = _kernel is null ? default : stackalloc bool[Capacity];
        for (int t = 0; t < Count; t++)
        {
            int slot = SlotOf(t);
            var e = _entries[slot]!;
            if (part is null ? e.Id != id : part(e.Id) != part(id))
            {
                refs.Add(e);
                if (_kernel is not null) included[slot] = true;
            }
        }
        int n = refs.Count;
        image = float.NaN;
        if (n == 0) return false;
        if (sources is not null) foreach (var e in refs) sources.Add(e.Id);
        int k = Stats.IntervalCount(n, _fraction);
        if (_kernel is not null)
        {
            image = _kernel.Score(frame, included, k, topN, scores[..p]);
            return true;
        }
        var perView = ArrayPool<float>.Shared.Rent(views * p);
        try
        {
            Parallel.For(0, views, Parallelism, v =>
            {
                // alpha[t*p + q]: nearest distance of patch q within reservoir frame t.
                var alpha = ArrayPool<float>.Shared.Rent(n * p);
                var column = ArrayPool<float>.Shared.Rent(n);
                try
                {
                    for (int t = 0; t < n; t++)
                    {
                        Span<float> best = alpha.AsSpan(t * p, p);
                        best.Fill(float.NegativeInfinity);
                        MaxDot.Accumulate(frame.Views[v], refs[t].Views[v], best);
                        for (int q = 0; q < p; q++) best[q] = MaxDot.UnitDistance(best[q]);
                    }
                    Span<float> s = perView.AsSpan(v * p, p);
                    for (int q = 0; q < p; q++)
                    {
                        for (int t = 0; t < n; t++) column[t] = alpha[t * p + q];
                        s[q] = Stats.MeanOfSmallest(column.AsSpan(0, n), k);
                    }
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(alpha);
                    ArrayPool<float>.Shared.Return(column);
                }
            });
            ScoreMath.FuseViews(perView.AsSpan(0, views * p), views, scores[..p]);
            image = FrameScore.ImageScore(scores[..p], topN);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(perView);
        }
        return true;
    }
}
