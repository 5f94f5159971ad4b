namespace EdgeInspector.Service;

/// <summary>Told of every verdict handed to the link (after it was counted): the live view and the metrics.</summary>
internal interface IVerdictSink
{
    void Published(VerdictMessage verdict, byte[]? heatmap);
}

/// <summary>
/// One camera's recent past for the live view: the last verdicts and the latest frame with its heatmap.
/// Heatmaps cost a render, so a frame that neither MQTT nor the archive wanted one for gets it for the
/// view at most once per <see cref="HeatmapPeriod"/>.
/// </summary>
internal sealed class LiveFeed : IVerdictSink
{
    public const int Kept = 24;
    public static readonly TimeSpan HeatmapPeriod = TimeSpan.FromSeconds(1);

    private readonly Lock _gate = new();
    private readonly VerdictMessage[] _ring = new VerdictMessage[Kept];
    private int _count, _next;
    private long _lastRender = long.MinValue;
    private (long FrameId, string Verdict, byte[] Jpeg)? _latest;

    /// <summary>True when the frame being decided should get a heatmap for the view (and claims the slot).</summary>
    public bool WantsHeatmap()
    {
        long now = Environment.TickCount64;
        lock (_gate)
        {
            if (_lastRender != long.MinValue && now - _lastRender < HeatmapPeriod.TotalMilliseconds) return false;
            _lastRender = now;
            return true;
        }
    }

    public void Published(VerdictMessage verdict, byte[]? heatmap)
    {
        lock (_gate)
        {
            _ring[_next] = verdict;
            _next = (_next + 1) % Kept;
            if (_count < Kept) _count++;
            if (heatmap is not null) _latest = (verdict.FrameId, verdict.Verdict, heatmap);
        }
    }

    /// <summary>The last verdicts, newest first.</summary>
    public VerdictMessage[] Recent()
    {
        lock (_gate)
        {
            var list = new VerdictMessage[_count];
            for (int i = 0; i < _count; i++) list[i] = _ring[(_next - 1 - i + Kept) % Kept];
            return list;
        }
    }

    /// <summary>The latest frame rendered with its heatmap, if any.</summary>
    public (long FrameId, string Verdict, byte[] Jpeg)? Latest
    {
        get { lock (_gate) return _latest; }
    }
}
