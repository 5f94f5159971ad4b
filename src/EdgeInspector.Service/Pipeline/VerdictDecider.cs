using System.Globalization;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Core.Verdicts;
using EdgeInspector.Imaging;

namespace EdgeInspector.Service;

/// <summary>
/// Decide: a scored frame becomes a verdict under the policy and recipe in force, with its heatmap
/// rendered when it will be published or archived (or shown on the live view), and its record queued for the archive. Runs on the
/// inference thread (the heatmap's colour scale reads the engine's calibration).
/// </summary>
internal sealed class VerdictDecider(string camera, FrameInspector inspector, VerdictPublisher publisher, Archive archive, LiveFeed feed, Func<LiveSettings> live)
{
    public FrameOutcome Decide(FrameMeta meta, TiledResult scored, References references, DecodedImage image)
    {
        var (policy, recipe) = publisher.Current();
        var kind = policy.Decide(scored.Calibrated);
        var outcome = new FrameOutcome
        {
            Kind = kind, Score = scored.Image, Calibrated = scored.Calibrated,
            ReferenceFrames = references.Frames, ReferenceRuns = references.Runs, Threshold = policy.Threshold, Recipe = recipe,
            // Decided here with the verdict, so that the archived record and the published verdict say the same
            // even if a recipe switch or an edit lands before the verdict is published.
            Reject = policy.Rejects(kind),
        };
        var settings = live().Settings;
        bool archived = InspectorSettings.Selects(settings.Archive.Save, kind.IsFlagged());
        // The live view gets a heatmap at most once a second when neither MQTT nor the archive asked for one.
        if (archived || InspectorSettings.Selects(settings.Heatmap.Publish, kind.IsFlagged()) || feed.WantsHeatmap())
        {
            // One colour scale for every frame: blue at a typical good part, red at the threshold and above.
            var engine = inspector.Engine;
            float low = engine.RawScoreAt(0), high = engine.RawScoreAt((float)policy.Threshold);
            if (!float.IsFinite(low) || !float.IsFinite(high) || high <= low) (low, high) = (scored.Patches.Min(), scored.Patches.Max());
            string caption = $"{camera} #{meta.Id} {VerdictNames.Wire(kind)} z={scored.Calibrated.ToString("0.00", CultureInfo.InvariantCulture)}";
            outcome.Heatmap = image.HeatmapJpeg(scored.Patches, scored.GridWidth, scored.GridHeight, low, high, caption, settings.Heatmap.JpegQuality, region: inspector.Roi);
        }
        if (archived) archive.Enqueue(meta, image, outcome);
        return outcome;
    }
}
