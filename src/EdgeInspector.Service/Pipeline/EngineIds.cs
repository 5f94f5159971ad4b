using System.Globalization;
using System.Text;

namespace EdgeInspector.Service;

/// <summary>A stretch of a verdict's references, in their order, that are frames of one run (null: known-good
/// images, or frames of a run that a snapshot written without its runs did not name).</summary>
internal sealed record ReferenceRun(long? RunId, int Frames);

/// <summary>A verdict's references: frame ids as each run numbered them, and the runs they belong to, in order.</summary>
internal sealed record References(long[] Frames, ReferenceRun[] Runs);

/// <summary>
/// The ids the engine knows frames by, across warm restarts, which take up reservoir frames of earlier
/// runs. Frame ids go on across restarts (<see cref="FrameCounter"/>), but a counter lost beside a kept
/// snapshot starts them at 1 again: pushed as they are, this run's frame 17 would then meet an earlier
/// run's frame 17 in the reservoir and leave it out as its own entry. So the engine is given this run's
/// frame id plus a <see cref="Base"/> above every id it holds from before; and each reference is resolved
/// to its run and its frame id there, from the runs kept with the snapshot (<see cref="Text"/>,
/// <see cref="Restore"/>), so that a verdict can say which run each reference came from. Known-good images
/// keep their negative ids. Used on the inference thread only.
/// </summary>
internal sealed class EngineIds(long runId)
{
    // Earlier runs whose frames the engine may hold: ascending starts, every one under Base.
    private readonly List<(long Start, long? Run)> _earlier = [];

    /// <summary>What this run's frame ids are shifted by: 0 on a cold start.</summary>
    public long Base { get; private set; }

    public long ToEngine(long frameId) => Base + frameId;

    public long ToFrame(long engineId) => engineId - Base;

    /// <summary>
    /// Takes up the runs a snapshot named (<paramref name="saved"/>: its <c>runs</c> text; null for a snapshot
    /// written without it) for the engine ids it holds (<paramref name="held"/>, one per frame). Runs none of
    /// those ids fall in are dropped; this run's ids start above the largest held.
    /// </summary>
    /// <exception cref="InvalidDataException">The text is not a list of runs.</exception>
    public void Restore(string? saved, IReadOnlyCollection<long> held)
    {
        var runs = saved is null ? [(0L, (long?)null)] : Parse(saved);
        long largest = -1;
        foreach (long id in held) largest = Math.Max(largest, id);
        _earlier.Clear();
        for (int i = 0; i < runs.Count; i++)
        {
            if (HoldsAny(held, runs[i].Start, i + 1 < runs.Count ? runs[i + 1].Start : long.MaxValue)) _earlier.Add(runs[i]);
        }
        Base = largest + 1;
    }

    /// <summary>
    /// The runs whose frames are among <paramref name="held"/> (engine ids), this one last, as the snapshot
    /// keeps them: <c>start:run</c> pairs, comma-separated, <c>-</c> for a run not known.
    /// </summary>
    public string Text(IReadOnlyCollection<long> held)
    {
        var text = new StringBuilder();
        for (int i = 0; i < _earlier.Count; i++)
        {
            if (HoldsAny(held, _earlier[i].Start, i + 1 < _earlier.Count ? _earlier[i + 1].Start : Base)) Append(text, _earlier[i]);
        }
        Append(text, (Base, runId));
        return text.ToString();
    }

    /// <summary>Whether any of <paramref name="held"/> falls in a run's ids, from <paramref name="start"/> up to <paramref name="end"/>.</summary>
    private static bool HoldsAny(IReadOnlyCollection<long> held, long start, long end)
    {
        foreach (long id in held) if (id >= start && id < end) return true;
        return false;
    }

    private static void Append(StringBuilder text, (long Start, long? Run) run) =>
        text.Append(text.Length == 0 ? "" : ",").Append(CultureInfo.InvariantCulture, $"{run.Start}:{(run.Run is { } r ? r.ToString(CultureInfo.InvariantCulture) : "-")}");

    private static List<(long Start, long? Run)> Parse(string text)
    {
        var runs = new List<(long Start, long? Run)>();
        foreach (string pair in text.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = pair.IndexOf(':');
            if (colon <= 0 || !long.TryParse(pair.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out long start)
                || (runs.Count > 0 && start <= runs[^1].Start))
                throw new InvalidDataException($"its runs '{text}' are not ascending start:run pairs");
            string run = pair[(colon + 1)..];
            if (run == "-") runs.Add((start, null));
            else if (long.TryParse(run, NumberStyles.None, CultureInfo.InvariantCulture, out long r)) runs.Add((start, r));
            else throw new InvalidDataException($"its runs '{text}' name a run '{run}' that is not a number");
        }
        if (runs.Count == 0) throw new InvalidDataException("its runs are empty");
        return runs;
    }

    /// <summary>The engine's reference ids as frame ids of their runs, and the runs in order.</summary>
    public References Resolve(long[] engineIds)
    {
        var frames = new long[engineIds.Length];
        var runs = new List<ReferenceRun>();
        for (int i = 0; i < engineIds.Length; i++)
        {
            long id = engineIds[i];
            (long start, long? run) = id < 0 ? (0, null) : id >= Base ? (Base, runId) : Earlier(id);
            frames[i] = id - start;
            if (runs.Count > 0 && runs[^1].RunId == run) runs[^1] = runs[^1] with { Frames = runs[^1].Frames + 1 };
            else runs.Add(new ReferenceRun(run, 1));
        }
        return new References(frames, [.. runs]);
    }

    private (long Start, long? Run) Earlier(long id)
    {
        for (int i = _earlier.Count - 1; i >= 0; i--) if (_earlier[i].Start <= id) return _earlier[i];
        return (0, null);
    }
}
