using System.Buffers;
using EdgeInspector.Core.Coreset;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>
/// A reservoir of recent accepted frames (spec §6.1's K_ref), each compressed to a k-center subset of its
/// patches, that scores a patch the way MuSc does: its nearest distance within each reservoir frame, then
/// the mean of the lowest <see cref="EngineOptions.IntervalFraction"/> of those (the interval average), per
/// view, fused by the mean over views. With a window radius r, each frame is also searched whole within
/// (2r + 1)² positions of the patch's own, and the nearest distance is the smaller of the two searches.
/// </summary>
/// <remarks>
/// Why: a coreset's nearest element is a minimum over the union of every frame it came from, so a pattern
/// that recurs in a few percent of the frames (magnetic tile's "uneven" surface) always finds a close
/// element and scores as normal. MuSc asks whether the pattern is in 30% of the frames. Keeping frames
/// apart, even subsampled, keeps that question answerable at a coreset's cost: R frames × k patches are
/// as many references as a coreset of R·k elements. A frame's own entry never scores it.
/// The subset stands in for the whole frame, and every distance it gives is at least the whole frame's.
/// On small defects that excess hides the defect (docs/decisions/0004). The window search takes it back
/// where the part sits in place, for (2r + 1)² / P of a whole frame's work, while the subset still finds
/// the patch that moved. Both searches run on bytes: each frame and the scored view at their levels
/// (decisions 0012 and 0013), the kept patches rows of the frame's window grid.
/// Not thread-safe; frames may be scored on several threads while no <see cref="Add"/> runs.
/// What a snapshot reads and takes up (<see cref="Export"/>, <see cref="Import"/>) is in FrameReservoir.Snapshot.cs.
/// </remarks>
public sealed partial class FrameReservoir : IDisposable
{
    private readonly FeatureLayout _layout;
    private readonly SparseProjection _projection;
    private readonly double _fraction;
    private readonly Entry?[] _entries;
    private readonly IReservoirKernel? _kernel;
    private readonly int _radius;
    private int _next;

    /// <summary>Scored frames' views at their levels, reused: a Score takes one per view and gives them back.</summary>
    private readonly System.Collections.Concurrent.ConcurrentBag<WindowQuery> _queries = [];

    /// <summary>
    /// Reservoir frames one work item of <c>Score</c> searches for one view. With a view per item, a machine with
    /// more cores than views, or a layout of three views on two cores, leaves cores idle; at the defaults
    /// (six views, 64 frames) this makes 24 items.
    /// </summary>
    public const int FramesPerItem = 16;

    /// <summary>A held frame: its kept patches per view, the k-center indices they are, and with a window its whole views laid out for the search (the kept patches are rows of these).</summary>
    private sealed record Entry(long Id, KeptRows[] Rows, int[] Kept, WindowGrid[]? Grids);

    /// <summary>Where <c>Score</c>'s work items (a view against a block of reservoir frames) and <c>Add</c>'s views run (see <see cref="ReservoirEngine.Parallelism"/>).</summary>
    public ParallelOptions Parallelism { get; set; } = new();

    /// <summary>
    /// Creates an empty reservoir of <paramref name="capacity"/> frames, keeping <paramref name="keep"/> patches
    /// of each. With <paramref name="kernel"/> (made for this capacity and keep), frames are scored there and
    /// every slot written is mirrored to it; otherwise by the managed kernel. <paramref name="radius"/> is the
    /// window's (−1: none); a reservoir that keeps every patch needs none and searches none.
    /// </summary>
    public FrameReservoir(FeatureLayout layout, SparseProjection projection, int capacity, int keep, double fraction, IReservoirKernel? kernel = null, int radius = -1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(radius, -1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        _layout = layout;
        _projection = projection;
        _fraction = fraction;
        _entries = new Entry?[capacity];
        Keep = Math.Min(keep, layout.Patches);
        _radius = WindowRadius(layout, keep, radius);
        _kernel = kernel;
    }

    /// <summary>The window radius a reservoir of <paramref name="layout"/> keeping <paramref name="keep"/> patches searches: −1 when it keeps every patch.</summary>
    public static int WindowRadius(FeatureLayout layout, int keep, int radius) => keep >= layout.Patches ? -1 : radius;

    /// <summary>The window radius searched (−1: none).</summary>
    public int Radius => _radius;

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

    /// <summary>Bytes one frame takes in a reservoir of <paramref name="layout"/> that keeps <paramref name="keep"/> of its patches and searches a window of <paramref name="radius"/>.</summary>
    public static long BytesPerFrame(FeatureLayout layout, int keep, int radius = -1)
    {
        long bytes = 4L * Math.Min(keep, layout.Patches);
        radius = WindowRadius(layout, keep, radius);
        foreach (var v in layout.Views)
        {
            bytes += KeptRows.BytesFor(Math.Min(keep, layout.Patches), v.Dim);
            if (radius >= 0) bytes += WindowGrid.BytesFor(layout.GridHeight, layout.GridWidth, v.Dim, radius);
        }
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
                foreach (var v in e.Rows) bytes += v.AllocatedBytes;
                foreach (var g in e.Grids ?? []) bytes += g.AllocatedBytes;
                bytes += 4L * e.Kept.Length;
            }
            return bytes;
        }
    }

    /// <summary>The slot of the t-th oldest frame held (t below <see cref="Count"/>): the ring's slots in age order.</summary>
    private int SlotOf(int t) => (_next - Count + t + Capacity) % Capacity;

    /// <summary>The t-th oldest frame held.</summary>
    private Entry Oldest(int t) => _entries[SlotOf(t)]!;

    /// <summary>An entry's kept patches per view as the search sees them, row-major.</summary>
    private static float[][] KeptValues(Entry e)
    {
        var rows = new float[e.Rows.Length][];
        for (int v = 0; v < rows.Length; v++)
        {
            rows[v] = new float[e.Rows[v].Count * e.Rows[v].Dim];
            e.Rows[v].CopyRows(rows[v]);
        }
        return rows;
    }

    /// <summary>An entry's whole views, row-major (copies), when it holds them (a reservoir with a window).</summary>
    private static float[][]? FrameRows(Entry e)
    {
        if (e.Grids is null) return null;
        var rows = new float[e.Grids.Length][];
        for (int v = 0; v < rows.Length; v++)
        {
            var g = e.Grids[v];
            rows[v] = new float[g.Height * g.Width * g.Dim];
            g.CopyRows(rows[v]);
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
    /// appearance rather than a region of it. The views are projected and laid out for the window search
    /// on <see cref="Parallelism"/>'s threads, one view each: the frame's score is done by then, and a core
    /// would otherwise wait.
    /// </summary>
    public void Add(FrameFeatures frame, long id)
    {
        int p = _layout.Patches, pd = _projection.OutputDim;
        if (Keep >= p)
        {
            // Every patch kept: no selection, and no window to search (WindowRadius).
            var every = new int[p];
            for (int q = 0; q < p; q++) every[q] = q;
            Insert(Make(id, frame.Views, every), null);
            return;
        }
        var projected = ArrayPool<float>.Shared.Rent(p * pd);
        try
        {
            var grids = _radius >= 0 ? new WindowGrid[frame.Views.Length] : null;
            Parallel.For(0, frame.Views.Length, Parallelism, v =>
            {
                _projection.ProjectView(frame, v, projected.AsSpan(0, p * pd));
                if (grids is not null) grids[v] = Grid(frame.Views[v], v);
            });
            int[] chosen = KCenterGreedy.Select(projected.AsSpan(0, p * pd), pd, Keep, start: 0);
            Insert(Make(id, frame.Views, chosen, grids), grids is not null ? frame.Views : null);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(projected);
        }
    }

    /// <summary>View <paramref name="v"/> of a frame (row-major, whole) laid out for the window search.</summary>
    private WindowGrid Grid(float[] view, int v) => WindowGrid.Pack(view, _layout.GridHeight, _layout.GridWidth, _layout.Views[v].Dim, _radius);

    /// <summary>
    /// An entry of the patches <paramref name="chosen"/> of a frame's views (row-major, whole): with a window,
    /// the frame's grids (<paramref name="grids"/>, or packed here) and the chosen patches' rows of them;
    /// without, the chosen patches at their own levels.
    /// </summary>
    private Entry Make(long id, IReadOnlyList<float[]> frame, int[] chosen, WindowGrid[]? grids = null)
    {
        var rows = new KeptRows[frame.Count];
        if (_radius >= 0 && grids is null)
        {
            var packed = new WindowGrid[frame.Count];
            Parallel.For(0, frame.Count, Parallelism, v => packed[v] = Grid(frame[v], v));
            grids = packed;
        }
        float[]? gathered = null;
        for (int v = 0; v < rows.Length; v++)
        {
            int d = _layout.Views[v].Dim;
            if (grids is not null)
            {
                rows[v] = KeptRows.Gather(grids[v], chosen);
                continue;
            }
            gathered ??= new float[chosen.Length * d];
            if (gathered.Length < chosen.Length * d) gathered = new float[chosen.Length * d];
            for (int c = 0; c < chosen.Length; c++) frame[v].AsSpan(chosen[c] * d, d).CopyTo(gathered.AsSpan(c * d, d));
            rows[v] = KeptRows.Pack(gathered, chosen.Length, d);
        }
        return new Entry(id, rows, chosen, grids);
    }

    /// <summary>
    /// Puts <paramref name="entry"/> in the next slot, and its rows into the kernel's copy of that slot: the kept
    /// rows at their levels, and the frame's whole views, <paramref name="whole"/> (unpacked from its grids if
    /// not at hand), which the kernel brings to the grid's levels itself.
    /// </summary>
    private void Insert(Entry entry, IReadOnlyList<float[]>? whole)
    {
        _entries[_next] = entry;
        _kernel?.Store(_next, KeptValues(entry), entry.Kept.Length, _radius >= 0 ? whole ?? FrameRows(entry) : null);
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
        int blocks = (n + FramesPerItem - 1) / FramesPerItem;
        // alpha[(v*n + t)*p + q]: the largest dot product of view v's patch q within reservoir frame t (its nearest patch there).
        var alpha = ArrayPool<float>.Shared.Rent(views * n * p);
        var perView = ArrayPool<float>.Shared.Rent(views * p);
        var queries = new WindowQuery[views];
        for (int v = 0; v < views; v++) queries[v] = _queries.TryTake(out var q) ? q : new WindowQuery();
        try
        {
            Parallel.For(0, views, Parallelism, v => queries[v].Pack(frame.Views[v], _layout.GridHeight, _layout.GridWidth, _layout.Views[v].Dim));
            Parallel.For(0, views * blocks, Parallelism, item =>
            {
                int v = item / blocks, first = item % blocks * FramesPerItem, last = Math.Min(n, first + FramesPerItem);
                for (int t = first; t < last; t++)
                {
                    Span<float> best = alpha.AsSpan((v * n + t) * p, p);
                    best.Fill(float.NegativeInfinity);
                    KeptMaxDot.Accumulate(queries[v], refs[t].Rows[v], best);
                    if (_radius >= 0) WindowMaxDot.Accumulate(queries[v], refs[t].Grids![v], best);
                }
            });
            Parallel.For(0, views, Parallelism, v => Stats.IntervalAverageOfDots(alpha.AsSpan(v * n * p, n * p), n, k, perView.AsSpan(v * p, p)));
            ScoreMath.FuseViews(perView.AsSpan(0, views * p), views, scores[..p]);
            image = FrameScore.ImageScore(scores[..p], topN);
        }
        finally
        {
            foreach (var q in queries) _queries.Add(q);
            ArrayPool<float>.Shared.Return(alpha);
            ArrayPool<float>.Shared.Return(perView);
        }
        return true;
    }
}
