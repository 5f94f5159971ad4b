using EdgeInspector.Core.Verdicts;

namespace EdgeInspector.Core.Tests;

/// <summary>The drift monitor on cases small enough to follow by hand (window 4, bounds 0.3 and 1.0).</summary>
public class DriftTests
{
    private const float R = float.NaN; // a rejected part (fail or unsure): its score does not count

    private static bool Step(DriftMonitor m, float score) => m.Observe(float.IsNaN(score), float.IsNaN(score) ? 9f : score);

    [Fact]
    public void Alarms_rise_beyond_their_bound_and_clear_within_half_of_it()
    {
        var m = new DriftMonitor(new DriftOptions(Window: 4, RejectRateRise: 0.3, ScoreShift: 1.0));
        // The first window is the baseline: nothing rejected, accepted scores 0, 1, 0, 1 (median 0.5).
        foreach (float s in new[] { 0f, 1f, 0f }) Assert.False(Step(m, s));
        Assert.False(m.Reading.BaselineSet);
        Assert.False(Step(m, 1));
        Assert.Equal((true, 0.0, 0.5), (m.Reading.BaselineSet, m.Reading.BaselineRejectRate, m.Reading.BaselineMedian));

        // Window {R, 1, 0, 1}: reject rate 0.25, within 0.3; accepted median 1, 0.5 from the baseline.
        Assert.False(Step(m, R));
        Assert.Equal((0.25, 1.0, false, false), (m.Reading.RejectRate, m.Reading.AcceptedMedian, m.Reading.RejectRateAlarm, m.Reading.ScoreShiftAlarm));
        // {R, R, 0, 1}: 0.5 > 0.3: the reject-rate alarm rises.
        Assert.True(Step(m, R));
        Assert.True(m.Reading.RejectRateAlarm);
        Assert.False(m.Reading.ScoreShiftAlarm);
        // {R, R, 0, 5}: accepted median 2.5, 2.0 from the baseline: the score-shift alarm rises too.
        Assert.False(Step(m, 0));
        Assert.True(Step(m, 5));
        Assert.Equal((true, true, 2.5), (m.Reading.RejectRateAlarm, m.Reading.ScoreShiftAlarm, m.Reading.AcceptedMedian));
        // {5, R, 0, 5}: reject rate 0.25 is below the bound but above half of it (0.15): still raised.
        Assert.False(Step(m, 5));
        Assert.True(m.Reading.RejectRateAlarm);
        // {5, 0.5, 0, 5}: reject rate 0: cleared. Median 2.75: the shift stays.
        Assert.True(Step(m, 0.5f));
        Assert.Equal((false, true, true), (m.Reading.RejectRateAlarm, m.Reading.ScoreShiftAlarm, m.Reading.Active));
    }

    [Fact]
    public void A_window_with_too_few_accepted_parts_leaves_the_score_alarm_to_the_reject_rate_and_a_reset_relearns_the_baseline()
    {
        var m = new DriftMonitor(new DriftOptions(Window: 8, RejectRateRise: 0.3, ScoreShift: 1.0));
        for (int i = 0; i < 8; i++) Step(m, 0);
        // Seven of eight rejected: one accepted part is fewer than a quarter of the window: no median.
        for (int i = 0; i < 7; i++) Step(m, R);
        Assert.True(double.IsNaN(m.Reading.AcceptedMedian));
        Assert.True(m.Reading.RejectRateAlarm);
        Assert.False(m.Reading.ScoreShiftAlarm);
        m.Reset();
        Assert.Equal((false, 0, false), (m.Reading.BaselineSet, m.Reading.Scored, m.Reading.Active));
        // After a reset the next window is the baseline, whatever it holds: no alarm against it.
        for (int i = 0; i < 8; i++) Assert.False(Step(m, i % 2 == 0 ? R : 3));
        Assert.Equal((true, 0.5, 3.0), (m.Reading.BaselineSet, m.Reading.BaselineRejectRate, m.Reading.BaselineMedian));
        Assert.False(m.Reading.Active);
    }

    [Fact]
    public void The_first_parts_after_warm_up_settle_before_the_baseline()
    {
        var m = new DriftMonitor(new DriftOptions(Window: 4, RejectRateRise: 0.3, ScoreShift: 1.0), settle: 3);
        // Three parts let by (low scores, all rejected): they are not in the baseline.
        for (int i = 0; i < 3; i++) Assert.False(Step(m, R));
        Assert.Equal((false, 3), (m.Reading.BaselineSet, m.Reading.Scored));
        foreach (float s in new[] { 0f, 1f, 0f, 1f }) Assert.False(Step(m, s));
        Assert.Equal((true, 0.0, 0.5, 7), (m.Reading.BaselineSet, m.Reading.BaselineRejectRate, m.Reading.BaselineMedian, m.Reading.Scored));
        m.Reset();
        Assert.False(Step(m, R)); // settles again after a reset
        Assert.Equal(1, m.Reading.Scored);
    }
}
