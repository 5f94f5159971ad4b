using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Coreset;

/// <summary>
/// The memory of "normal" patches: elements are patch locations of past frames, kept with their
/// features in every view (one membership shared by all views, so one size bound), their source frame
/// (so a frame's own elements can be excluded when it is scored) and their adjusted score. Batch FSLC's
/// memory, the evaluation's yardstick.
/// </summary>
public sealed class PatchCoreset
{
    private readonly float[][] _rows;
    private float[] _projected;
    private long[] _source;
    private float[] _viewAdjusted; // Count × views
    private readonly PackedPanels[] _packed;
    private long[] _segmentSource = [];
    private bool _packedCurrent;

    /// <summary>Creates an empty coreset for <paramref name="layout"/> with projected rows of <paramref name="projectedDim"/>.</summary>
    public PatchCoreset(FeatureLayout layout, int projectedDim, int capacity = 1024)
    {
        Layout = layout;
        ProjectedDim = projectedDim;
        capacity = Math.Max(capacity, 1);
        _rows = new float[layout.Views.Count][];
        for (int v = 0; v < _rows.Length; v++) _rows[v] = new float[capacity * layout.Views[v].Dim];
        _projected = new float[capacity * projectedDim];
        _source = new long[capacity];
        _viewAdjusted = new float[capacity * layout.Views.Count];
        _packed = new PackedPanels[layout.Views.Count];
        for (int v = 0; v < _packed.Length; v++) _packed[v] = new PackedPanels();
    }

    /// <summary>The feature layout.</summary>
    public FeatureLayout Layout { get; }

    /// <summary>Width of the projected rows used for k-center selection.</summary>
    public int ProjectedDim { get; }

    /// <summary>Number of elements.</summary>
    public int Count { get; private set; }

    /// <summary>Elements of view <paramref name="v"/>, Count × dim.</summary>
    public ReadOnlySpan<float> Rows(int v) => _rows[v].AsSpan(0, Count * Layout.Views[v].Dim);

    /// <summary>Projected elements, Count × ProjectedDim.</summary>
    public ReadOnlySpan<float> Projected => _projected.AsSpan(0, Count * ProjectedDim);

    /// <summary>Source frame of each element.</summary>
    public ReadOnlySpan<long> Sources => _source.AsSpan(0, Count);

    /// <summary>
    /// Adjusted (interval-average) score of each element, fused over views: the mean of its per-view
    /// scores, summed in view order as <c>Fslc.AdjustedScores</c> does, so both agree exactly.
    /// </summary>
    public float[] FusedAdjusted()
    {
        int nv = Layout.Views.Count;
        var fused = new float[Count];
        for (int e = 0; e < Count; e++)
        {
            for (int v = 0; v < nv; v++) fused[e] += _viewAdjusted[e * nv + v] / nv;
        }
        return fused;
    }

    /// <summary>Per element and view (Count × views), the adjusted score in that view alone.</summary>
    public ReadOnlySpan<float> ViewAdjusted => _viewAdjusted.AsSpan(0, Count * Layout.Views.Count);

    /// <summary>
    /// When true, scoring lifts every element by its per-view adjusted score a_v(m): a query's score in a
    /// view is √(min_m ‖z−m‖² + a_v(m)²), so matching an element that itself looks anomalous across the
    /// line does not make a patch normal. When false, plain nearest distance (the poster's literal rule).
    /// </summary>
    public bool Lift
    {
        get => _lift;
        set
        {
            _lift = value;
            _packedCurrent = false;
        }
    }

    private bool _lift;

    /// <summary>Adds patch <paramref name="patch"/> of <paramref name="frame"/>.</summary>
    public void Add(FrameFeatures frame, int patch, ReadOnlySpan<float> projected, long source, ReadOnlySpan<float> viewAdjusted = default)
    {
        EnsureCapacity(Count + 1);
        for (int v = 0; v < _rows.Length; v++)
        {
            int d = Layout.Views[v].Dim;
            frame.Views[v].AsSpan(patch * d, d).CopyTo(_rows[v].AsSpan(Count * d, d));
        }
        Append(projected, source, viewAdjusted);
    }

    /// <summary>Adds an element given as one row per view.</summary>
    public void AddRows(IReadOnlyList<float[]> rows, ReadOnlySpan<float> projected, long source, ReadOnlySpan<float> viewAdjusted = default)
    {
        EnsureCapacity(Count + 1);
        for (int v = 0; v < _rows.Length; v++)
        {
            int d = Layout.Views[v].Dim;
            if (rows[v].Length != d) throw new ArgumentException($"View {v} row has {rows[v].Length} values, expected {d}.", nameof(rows));
            rows[v].CopyTo(_rows[v].AsSpan(Count * d, d));
        }
        Append(projected, source, viewAdjusted);
    }

    /// <summary>Everything but the feature rows of a new element (the rows are already at index Count).</summary>
    private void Append(ReadOnlySpan<float> projected, long source, ReadOnlySpan<float> viewAdjusted)
    {
        projected.CopyTo(_projected.AsSpan(Count * ProjectedDim, ProjectedDim));
        _source[Count] = source;
        SetViewAdjusted(Count, viewAdjusted);
        Count++;
        Changed();
    }

    /// <summary>Sets the per-view adjusted scores of element <paramref name="index"/> (empty: zeros).</summary>
    public void SetAdjusted(int index, ReadOnlySpan<float> viewAdjusted)
    {
        SetViewAdjusted(index, viewAdjusted);
        Changed(); // a lift changes what the coreset scores
    }

    private void SetViewAdjusted(int index, ReadOnlySpan<float> values)
    {
        int v = Layout.Views.Count;
        Span<float> dst = _viewAdjusted.AsSpan(index * v, v);
        if (values.IsEmpty) dst.Clear();
        else values.CopyTo(dst);
    }

    /// <summary>Keeps the elements whose flag is true, in order.</summary>
    public void Retain(ReadOnlySpan<bool> keep)
    {
        if (keep.Length != Count) throw new ArgumentException($"{keep.Length} flags for {Count} elements.", nameof(keep));
        int w = 0;
        for (int r = 0; r < Count; r++)
        {
            if (!keep[r]) continue;
            if (w != r) Move(r, w);
            w++;
        }
        Count = w;
        Changed();
    }

    private void Changed() => _packedCurrent = false;

    private void Move(int from, int to)
    {
        for (int v = 0; v < _rows.Length; v++)
        {
            int d = Layout.Views[v].Dim;
            _rows[v].AsSpan(from * d, d).CopyTo(_rows[v].AsSpan(to * d, d));
        }
        _projected.AsSpan(from * ProjectedDim, ProjectedDim).CopyTo(_projected.AsSpan(to * ProjectedDim, ProjectedDim));
        _source[to] = _source[from];
        int nv = Layout.Views.Count;
        _viewAdjusted.AsSpan(from * nv, nv).CopyTo(_viewAdjusted.AsSpan(to * nv, nv));
    }

    private void EnsureCapacity(int n)
    {
        if (n <= _source.Length) return;
        int cap = Math.Max(n, _source.Length * 2);
        for (int v = 0; v < _rows.Length; v++) Array.Resize(ref _rows[v], cap * Layout.Views[v].Dim);
        Array.Resize(ref _projected, cap * ProjectedDim);
        Array.Resize(ref _source, cap);
        Array.Resize(ref _viewAdjusted, cap * Layout.Views.Count);
    }

    /// <summary>
    /// The elements packed for scoring, one segment per source frame (elements are first reordered by
    /// source), so that <see cref="SegmentOf"/> gives the segment to skip when a frame is scored.
    /// Repacked only after a change.
    /// </summary>
    public IReadOnlyList<PackedPanels> Packed()
    {
        if (_packedCurrent) return _packed;
        SortBySource();
        var lengths = new List<int>();
        var sources = new List<long>();
        for (int r = 0; r < Count; r++)
        {
            if (r == 0 || _source[r] != _source[r - 1])
            {
                lengths.Add(0);
                sources.Add(_source[r]);
            }
            lengths[^1]++;
        }
        _segmentSource = sources.ToArray();
        var lens = lengths.ToArray();
        var bias = new float[Count];
        for (int v = 0; v < _packed.Length; v++)
        {
            _packed[v].Repack(Rows(v), Layout.Views[v].Dim, lens);
            if (!_lift) continue;
            int nv = _packed.Length;
            for (int e = 0; e < Count; e++)
            {
                float a = _viewAdjusted[e * nv + v];
                bias[e] = -0.5f * a * a;
            }
            _packed[v].SetBias(bias);
        }
        _packedCurrent = true;
        return _packed;
    }

    /// <summary>The packed segment holding <paramref name="source"/>'s elements, or -1. Valid after <see cref="Packed"/>.</summary>
    public int SegmentOf(long source)
    {
        int i = Array.BinarySearch(_segmentSource, source);
        return i >= 0 ? i : -1;
    }

    private void SortBySource()
    {
        bool sorted = true;
        for (int r = 1; r < Count && sorted; r++) sorted = _source[r - 1] <= _source[r];
        if (sorted) return;
        var order = new int[Count];
        for (int i = 0; i < Count; i++) order[i] = i;
        var keys = _source.AsSpan(0, Count).ToArray();
        Array.Sort(keys, order);
        Permute(order);
    }

    private void Permute(int[] order)
    {
        int n = Count;
        for (int v = 0; v < _rows.Length; v++)
        {
            int d = Layout.Views[v].Dim;
            var copy = _rows[v].AsSpan(0, n * d).ToArray();
            for (int i = 0; i < n; i++) copy.AsSpan(order[i] * d, d).CopyTo(_rows[v].AsSpan(i * d, d));
        }
        var p = _projected.AsSpan(0, n * ProjectedDim).ToArray();
        for (int i = 0; i < n; i++) p.AsSpan(order[i] * ProjectedDim, ProjectedDim).CopyTo(_projected.AsSpan(i * ProjectedDim, ProjectedDim));
        var s = _source.AsSpan(0, n).ToArray();
        int nv = Layout.Views.Count;
        var va = _viewAdjusted.AsSpan(0, n * nv).ToArray();
        for (int i = 0; i < n; i++)
        {
            _source[i] = s[order[i]];
            va.AsSpan(order[i] * nv, nv).CopyTo(_viewAdjusted.AsSpan(i * nv, nv));
        }
    }
}
