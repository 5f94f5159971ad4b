namespace EdgeInspector.Core.Verdicts;

/// <summary>
/// Keeps the promise made to the PLC: every registered frame is answered exactly once, in capture order,
/// and no later than its deadline. Frames are registered in order as they are captured; results may
/// complete in any order; <see cref="Drain"/> releases the head of the line while it has a result, or
/// releases it as timed out once its deadline has passed. A result that arrives after its frame timed
/// out is reported as late instead of being answered twice. Time is passed in (monotonic ticks), so the
/// behaviour is testable without clocks.
/// </summary>
/// <remarks>Not thread-safe: owned by one sequencing loop.</remarks>
public sealed class VerdictSequencer<T> where T : class
{
    private readonly Queue<long> _order = new();
    private readonly Dictionary<long, (long Deadline, T? Result)> _pending = [];
    private long _lastRegistered = long.MinValue;

    /// <summary>Frames registered and not yet released.</summary>
    public int Pending => _order.Count;

    /// <summary>Deadline of the head of the line, if any: when <see cref="Drain"/> must run next at the latest.</summary>
    public long? NextDeadline => _order.TryPeek(out long id) ? _pending[id].Deadline : null;

    /// <summary>Registers a captured frame. Ids must increase.</summary>
    public void Register(long frameId, long deadline)
    {
        if (frameId <= _lastRegistered) throw new ArgumentException($"Frame {frameId} registered after frame {_lastRegistered}: ids must increase.", nameof(frameId));
        _lastRegistered = frameId;
        _order.Enqueue(frameId);
        _pending[frameId] = (deadline, null);
    }

    /// <summary>
    /// Records a frame's result. Returns false when the frame is no longer pending (it already timed out,
    /// or was never registered): the caller logs the late result and must not answer it again.
    /// </summary>
    public bool Complete(long frameId, T result)
    {
        if (!_pending.TryGetValue(frameId, out var entry) || entry.Result is not null) return false;
        _pending[frameId] = (entry.Deadline, result);
        return true;
    }

    /// <summary>
    /// Releases, in order, every frame at the head of the line that has a result or whose deadline is at
    /// or before <paramref name="now"/>. A timed-out frame is released with a null result.
    /// </summary>
    public void Drain(long now, List<(long FrameId, T? Result)> released)
    {
        while (_order.TryPeek(out long id))
        {
            var (deadline, result) = _pending[id];
            if (result is null && deadline > now) break;
            _order.Dequeue();
            _pending.Remove(id);
            released.Add((id, result));
        }
    }
}
