using System.Diagnostics;

namespace EdgeInspector.Service;

/// <summary>
/// Which queued frames the inference stage does not start. Under sustained overload a first-in-first-out
/// queue fills until every frame has waited nearly its whole deadline; a frame taken then finishes after
/// it, is answered <c>timeout</c> all the same, and has spent a frame's time that the frames behind it
/// needed, so the line can end with nothing scored at all (decision 0009). A frame that, at the measured
/// time per frame, cannot be answered before its deadline is therefore answered <c>timeout</c> at once
/// and not started, and a batch takes no more frames than its first can wait for. The oldest frame that
/// can still make its deadline goes first, so verdicts keep capture order. A frame with nothing newer behind it is always started: it costs no other frame
/// anything, and its time keeps the estimate honest.
/// </summary>
/// <remarks>Used by the inference thread only.</remarks>
internal sealed class LoadShedding
{
    // The estimate is the lower median of the last few batches' time per frame: one slow batch (a first
    // call, a garbage collection, a warm-up build taking a core) does not make it shed a burst of frames
    // that could have made their deadlines; a slowdown that lasts moves it within a few batches.
    private const int Window = 8;
    // Until this many batches are measured nothing is shed: the first calls of a fresh process are slow.
    private const int Trusted = 3;
    private readonly double[] _recent = new double[Window];
    private readonly double[] _sorted = new double[Window];
    private int _measured;
    private double _ticksPerFrame;

    /// <summary>The time a frame takes from being taken to being answered, as estimated (0 until trusted).</summary>
    public double MsPerFrame => _ticksPerFrame * 1000.0 / Stopwatch.Frequency;

    /// <summary>
    /// True when a frame due at <paramref name="deadline"/>, started alone at <paramref name="now"/>, would
    /// be answered after its deadline, and a newer frame waits that can have the time instead.
    /// </summary>
    public bool ShouldShed(long now, long deadline, bool newerWaiting) => newerWaiting && !Fits(now, deadline, 1);

    /// <summary>
    /// True when a batch of <paramref name="frames"/> started at <paramref name="now"/> is done by
    /// <paramref name="deadline"/> (its first frame's: the frames of a batch are answered when its last is
    /// done). Always true until enough batches have been measured.
    /// </summary>
    public bool Fits(long now, long deadline, int frames) => _ticksPerFrame == 0 || now + _ticksPerFrame * frames <= deadline;

    /// <summary>Takes up the time a batch of <paramref name="frames"/> took, in Stopwatch ticks.</summary>
    public void Measured(long elapsedTicks, int frames)
    {
        if (frames <= 0 || elapsedTicks < 0) return;
        _recent[_measured % Window] = elapsedTicks / (double)frames;
        _measured++;
        if (_measured < Trusted) return;
        int n = Math.Min(_measured, Window);
        _recent.AsSpan(0, n).CopyTo(_sorted);
        Array.Sort(_sorted, 0, n);
        _ticksPerFrame = _sorted[(n - 1) / 2];
    }

    /// <summary>The timeout's error text: why this frame was not started.</summary>
    public string Reason(long now, long captured, int deadlineMs) =>
        $"not started: it had waited {(now - captured) * 1000.0 / Stopwatch.Frequency:0} ms in the queue, and at about {MsPerFrame:0} ms per frame it could not be answered within the {deadlineMs} ms deadline";
}
