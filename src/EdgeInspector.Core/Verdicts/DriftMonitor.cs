namespace EdgeInspector.Core.Verdicts;

/// <summary>The bounds a drift alarm is raised at.</summary>
/// <param name="Window">Scored parts in the rolling window, and in the baseline learned from the first window after warm-up.</param>
/// <param name="RejectRateRise">Raise when the window's reject rate (fail and unsure) exceeds the baseline's by more than this (0..1).</param>
/// <param name="ScoreShift">Raise when the median calibrated score of the window's accepted parts moves this far from the baseline's.</param>
public sealed record DriftOptions(int Window = 200, double RejectRateRise = 0.15, double ScoreShift = 1.0);

/// <summary>The kinds of drift, as named on the wire.</summary>
public static class DriftKinds
{
    public const string RejectRate = "reject_rate", ScoreShift = "score_shift";
}

/// <summary>What the monitor sees now.</summary>
/// <param name="BaselineSet">Whether the first window after warm-up has been seen.</param>
/// <param name="Scored">Scored parts seen since warm-up (at most settle + window).</param>
/// <param name="BaselineRejectRate">The baseline's reject rate (fail and unsure).</param>
/// <param name="RejectRate">The window's reject rate.</param>
/// <param name="BaselineMedian">The baseline's median calibrated score of accepted parts.</param>
/// <param name="AcceptedMedian">The window's; NaN when fewer than a quarter of it were accepted.</param>
/// <param name="RejectRateAlarm">Whether the reject-rate alarm is raised.</param>
/// <param name="ScoreShiftAlarm">Whether the score-shift alarm is raised.</param>
public readonly record struct DriftReading(
    bool BaselineSet, int Scored, double BaselineRejectRate, double RejectRate, double BaselineMedian, double AcceptedMedian,
    bool RejectRateAlarm, bool ScoreShiftAlarm)
{
    public bool Active => RejectRateAlarm || ScoreShiftAlarm;
}

/// <summary>
/// Watches a line for change the engine would otherwise absorb quietly: a light that ages, a lens that
/// gets dirty, a new lot. After warm-up, the first <c>settle</c> scored parts are let by: the calibration
/// still holds mostly the warm-up batch's scores, against which the first streaming scores read low. The
/// next <see cref="DriftOptions.Window"/> parts are the baseline: their reject rate, and the median
/// calibrated score of the parts accepted. From then on the
/// last <c>Window</c> parts are compared with it. An alarm is raised when a statistic moves beyond its
/// bound, and cleared when it is back within half of it (so a line at the edge does not flap).
/// </summary>
/// <remarks>
/// Not thread-safe: one caller (the publishing thread). No allocation per part: two rings and a scratch
/// array for the median.
/// </remarks>
public sealed class DriftMonitor
{
    private readonly DriftOptions _o;
    private readonly bool[] _rejected;
    private readonly float[] _scores; // calibrated score of each part in the window; NaN for a rejected one
    private readonly float[] _scratch;
    private readonly int _settle;
    private int _count, _next, _rejectedInWindow, _settled;
    private double _baselineRate, _baselineMedian;
    private bool _baselineSet, _rateAlarm, _shiftAlarm;

    /// <param name="options">The window and the bounds.</param>
    /// <param name="settle">Scored parts let by after warm-up before the baseline (the engine's warm-up batch).</param>
    public DriftMonitor(DriftOptions options, int settle = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Window, 4);
        ArgumentOutOfRangeException.ThrowIfNegative(settle);
        _o = options;
        _settle = settle;
        _rejected = new bool[options.Window];
        _scores = new float[options.Window];
        _scratch = new float[options.Window];
    }

    public DriftOptions Options => _o;

    public int Settle => _settle;

    /// <summary>Forgets the baseline and the window: the next window of scored parts is the new baseline (after a reset or a recipe switch).</summary>
    public void Reset()
    {
        _count = _next = _rejectedInWindow = _settled = 0;
        _baselineSet = _rateAlarm = _shiftAlarm = false;
    }

    /// <summary>One scored part: rejected (fail or unsure) or accepted with its calibrated score. True when an alarm was raised or cleared.</summary>
    public bool Observe(bool rejected, float calibrated)
    {
        if (_settled < _settle)
        {
            _settled++;
            return false;
        }
        if (_count == _rejected.Length && _rejected[_next]) _rejectedInWindow--;
        _rejected[_next] = rejected;
        _scores[_next] = rejected ? float.NaN : calibrated;
        if (rejected) _rejectedInWindow++;
        _next = (_next + 1) % _rejected.Length;
        if (_count < _rejected.Length) _count++;
        if (_count < _rejected.Length) return false;
        double rate = (double)_rejectedInWindow / _count;
        double median = AcceptedMedian();
        if (!_baselineSet)
        {
            _baselineSet = true;
            _baselineRate = rate;
            _baselineMedian = median;
            return false;
        }
        bool rateAlarm = Hysteresis(_rateAlarm, rate - _baselineRate, _o.RejectRateRise);
        // Too few accepted parts to say where they lie: the reject rate speaks for that window.
        bool shiftAlarm = double.IsFinite(median) && double.IsFinite(_baselineMedian)
            ? Hysteresis(_shiftAlarm, Math.Abs(median - _baselineMedian), _o.ScoreShift)
            : _shiftAlarm;
        bool changed = rateAlarm != _rateAlarm || shiftAlarm != _shiftAlarm;
        _rateAlarm = rateAlarm;
        _shiftAlarm = shiftAlarm;
        return changed;
    }

    /// <summary>Raised beyond <paramref name="bound"/>; once raised, cleared only within half of it.</summary>
    private static bool Hysteresis(bool raised, double excess, double bound) => raised ? excess > bound / 2 : excess > bound;

    public DriftReading Reading => new(
        _baselineSet, _settled + _count, _baselineRate, _count == 0 ? 0 : (double)_rejectedInWindow / _count, _baselineMedian,
        _count == 0 ? double.NaN : AcceptedMedian(), _rateAlarm, _shiftAlarm);

    /// <summary>The median calibrated score of the accepted parts in the window; NaN when fewer than a quarter were accepted.</summary>
    private double AcceptedMedian()
    {
        int n = 0;
        for (int i = 0; i < _count; i++)
        {
            if (!float.IsNaN(_scores[i])) _scratch[n++] = _scores[i];
        }
        if (n == 0 || n < _rejected.Length / 4) return double.NaN;
        var s = _scratch.AsSpan(0, n);
        s.Sort();
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
    }
}
