using EdgeInspector.Core.Numerics;

namespace EdgeInspector.Core.Scoring;

/// <summary>
/// Makes image scores comparable across batches (spec §6.7): a robust z-score against a ring buffer of
/// the image scores of accepted frames, u = (s − median) / (1.4826·MAD). What a threshold is set on.
/// </summary>
public sealed class ScoreCalibrator
{
    private readonly float[] _ring;
    private readonly float[] _scratch;
    private int _count, _next;
    private float _median, _sigma;
    private bool _dirty = true;

    /// <summary>Creates a calibrator keeping the last <paramref name="window"/> accepted scores.</summary>
    public ScoreCalibrator(int window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 2);
        _ring = new float[window];
        _scratch = new float[window];
    }

    /// <summary>Accepted scores held.</summary>
    public int Count => _count;

    /// <summary>Records the score of an accepted frame.</summary>
    public void Accept(float score)
    {
        _ring[_next] = score;
        _next = (_next + 1) % _ring.Length;
        if (_count < _ring.Length) _count++;
        _dirty = true;
    }

    /// <summary>The calibrated score of <paramref name="score"/>; 0 while fewer than two scores are held.</summary>
    public float Calibrate(float score)
    {
        if (_count < 2) return 0f;
        if (_dirty)
        {
            Span<float> s = _scratch.AsSpan(0, _count);
            _ring.AsSpan(0, _count).CopyTo(s);
            (_median, _sigma) = Stats.RobustLocationScale(s);
            // A flat history (all equal) would divide by zero; fall back to a tiny scale.
            if (_sigma <= 1e-12f) _sigma = MathF.Max(1e-6f, MathF.Abs(_median) * 1e-3f);
            _dirty = false;
        }
        return (score - _median) / _sigma;
    }

    /// <summary>
    /// The raw score whose calibrated value is <paramref name="z"/>: lets a heatmap use one colour scale
    /// for every frame (blue at a typical good part, red at the threshold and beyond). NaN while fewer
    /// than two scores are held.
    /// </summary>
    public float RawAt(float z)
    {
        if (_count < 2) return float.NaN;
        Calibrate(0f);
        return _median + z * _sigma;
    }

    /// <summary>The accepted scores held, oldest first (a copy): accepting them in order into an empty calibrator restores it.</summary>
    public float[] Values()
    {
        var values = new float[_count];
        int first = _count < _ring.Length ? 0 : _next;
        for (int i = 0; i < _count; i++) values[i] = _ring[(first + i) % _ring.Length];
        return values;
    }

    /// <summary>Forgets every score (recipe change).</summary>
    public void Clear()
    {
        _count = 0;
        _next = 0;
        _dirty = true;
    }
}
