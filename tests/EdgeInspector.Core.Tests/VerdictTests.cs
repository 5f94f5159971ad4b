using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Verdicts;

namespace EdgeInspector.Core.Tests;

public class VerdictPolicyTests
{
    [Theory]
    [InlineData(0.0f, VerdictKind.Pass)]
    [InlineData(2.5f, VerdictKind.Pass)]     // exactly at the band's lower edge: outside the open band
    [InlineData(2.6f, VerdictKind.Unsure)]
    [InlineData(3.0f, VerdictKind.Unsure)]
    [InlineData(3.4f, VerdictKind.Unsure)]
    [InlineData(3.5f, VerdictKind.Fail)]     // upper edge: fails
    [InlineData(9.0f, VerdictKind.Fail)]
    [InlineData(float.NaN, VerdictKind.Error)]
    [InlineData(float.PositiveInfinity, VerdictKind.Error)]
    public void Decide_uses_threshold_and_open_band(float z, VerdictKind expected)
    {
        var policy = new VerdictPolicy(Threshold: 3.0, UnsureBand: 0.5);
        Assert.Equal(expected, policy.Decide(z));
    }

    [Fact]
    public void Without_band_the_threshold_itself_fails()
    {
        var policy = new VerdictPolicy(Threshold: 3.0, UnsureBand: 0);
        Assert.Equal(VerdictKind.Pass, policy.Decide(2.999f));
        Assert.Equal(VerdictKind.Fail, policy.Decide(3.0f));
    }

    [Fact]
    public void Errors_always_reject_and_configured_actions_apply()
    {
        var lenient = new VerdictPolicy(Unsure: GateAction.Accept, WarmingUp: GateAction.Accept, Timeout: GateAction.Accept, Dropped: GateAction.Accept);
        Assert.True(lenient.Rejects(VerdictKind.Error));
        Assert.True(lenient.Rejects(VerdictKind.Fail));
        Assert.False(lenient.Rejects(VerdictKind.Pass));
        Assert.False(lenient.Rejects(VerdictKind.Unsure));
        Assert.False(lenient.Rejects(VerdictKind.WarmingUp));
        Assert.False(lenient.Rejects(VerdictKind.Timeout));
        Assert.False(lenient.Rejects(VerdictKind.Dropped));
        var strict = new VerdictPolicy(Unsure: GateAction.Reject, WarmingUp: GateAction.Reject, Timeout: GateAction.Reject, Dropped: GateAction.Reject);
        foreach (var k in Enum.GetValues<VerdictKind>()) Assert.Equal(k != VerdictKind.Pass, strict.Rejects(k));
    }

    [Fact]
    public void Wire_names_are_snake_case_and_distinct()
    {
        var names = Enum.GetValues<VerdictKind>().Select(VerdictNames.Wire).ToList();
        Assert.Equal(["pass", "fail", "unsure", "warming_up", "timeout", "error", "dropped"], names);
    }

    [Fact]
    public void Every_verdict_carries_the_error_code_of_the_documented_table()
    {
        // The numbers are the PLC contract (README): a renumbering breaks every PLC program.
        Assert.Equal(0, (int)ErrorCodes.For(VerdictKind.Pass));
        Assert.Equal(0, (int)ErrorCodes.For(VerdictKind.Fail));
        Assert.Equal(0, (int)ErrorCodes.For(VerdictKind.Unsure));
        Assert.Equal(1, (int)ErrorCodes.For(VerdictKind.WarmingUp));
        Assert.Equal(2, (int)ErrorCodes.For(VerdictKind.Timeout));
        Assert.Equal(3, (int)ErrorCodes.For(VerdictKind.Dropped));
        Assert.Equal(4, (int)ErrorCodes.For(VerdictKind.Error, ErrorCode.DecodeFailed));
        Assert.Equal(5, (int)ErrorCodes.For(VerdictKind.Error, ErrorCode.ModelFault));
        Assert.Equal(6, (int)ErrorCodes.For(VerdictKind.Error, ErrorCode.CameraLost));
        // An error with no known cause is never reported as "no error".
        Assert.Equal(ErrorCode.ModelFault, ErrorCodes.For(VerdictKind.Error));
        // A cause does not change the code of a verdict kind that has its own.
        Assert.Equal(ErrorCode.Timeout, ErrorCodes.For(VerdictKind.Timeout, ErrorCode.DecodeFailed));
    }

    [Fact]
    public void Calibrator_raw_at_inverts_calibrate()
    {
        var c = new ScoreCalibrator(16);
        Assert.True(float.IsNaN(c.RawAt(1)));
        // Scores 1..5: median 3, MAD 1, sigma 1.4826.
        foreach (float s in new[] { 1f, 2f, 3f, 4f, 5f }) c.Accept(s);
        Assert.Equal(3f, c.RawAt(0), 5);
        Assert.Equal(3f + 2 * 1.4826f, c.RawAt(2), 4);
        Assert.Equal(2f, c.Calibrate(c.RawAt(2)), 4);
    }
}

public class VerdictSequencerTests
{
    private sealed record R(string V);

    [Fact]
    public void Releases_in_order_even_when_results_complete_out_of_order()
    {
        var s = new VerdictSequencer<R>();
        for (long id = 1; id <= 3; id++) s.Register(id, deadline: 100 + id);
        var out1 = new List<(long, R?)>();
        Assert.True(s.Complete(3, new R("c")));
        Assert.True(s.Complete(2, new R("b")));
        s.Drain(now: 0, out1);
        Assert.Empty(out1);                         // head (1) has no result and no deadline passed
        Assert.True(s.Complete(1, new R("a")));
        s.Drain(now: 0, out1);
        Assert.Equal([1L, 2L, 3L], out1.Select(x => x.Item1));
        Assert.Equal(["a", "b", "c"], out1.Select(x => x.Item2!.V));
        Assert.Equal(0, s.Pending);
    }

    [Fact]
    public void Head_past_deadline_is_released_as_timeout_and_its_late_result_refused()
    {
        var s = new VerdictSequencer<R>();
        s.Register(10, deadline: 50);
        s.Register(11, deadline: 60);
        s.Complete(11, new R("ok"));
        var released = new List<(long, R?)>();
        s.Drain(now: 49, released);
        Assert.Empty(released);
        Assert.Equal(50, s.NextDeadline);
        s.Drain(now: 50, released);
        Assert.Equal(2, released.Count);
        Assert.Equal((10L, (R?)null), released[0]);  // timed out
        Assert.Equal("ok", released[1].Item2!.V);
        Assert.False(s.Complete(10, new R("late")));  // already answered: must not be answered twice
        Assert.Null(s.NextDeadline);
    }

    [Fact]
    public void Ids_must_increase_and_duplicates_are_refused()
    {
        var s = new VerdictSequencer<R>();
        s.Register(5, 1);
        Assert.Throws<ArgumentException>(() => s.Register(5, 2));
        Assert.Throws<ArgumentException>(() => s.Register(4, 2));
        Assert.True(s.Complete(5, new R("x")));
        Assert.False(s.Complete(5, new R("y")));
        Assert.False(s.Complete(99, new R("z")));
    }
}
