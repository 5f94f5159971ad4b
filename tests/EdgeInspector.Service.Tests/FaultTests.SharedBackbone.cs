using System.Collections.Concurrent;
using EdgeInspector.Configuration;
using EdgeInspector.Imaging;
using EdgeInspector.Inference.Onnx;
using EdgeInspector.Integration.Tests;

namespace EdgeInspector.Service.Tests;

/// <summary>One backbone session shared by every camera, each from its own inference thread.</summary>
public partial class FaultTests
{
    private static string[] Bottles(int n) =>
        [.. Directory.GetFiles(Path.Combine(Shared.Data("mvtec_ad/bottle"), "train", "good"), "*.png").Order().Take(n)];

    [Fact]
    public void Cameras_sharing_one_backbone_from_many_threads_get_the_features_each_would_get_alone()
    {
        // The plain twin: each image extracted alone on one thread. Then four cameras (two untiled, two in
        // 2x2 tiles) extract from four threads at once through the same session, round after round.
        var s = Settings(Path.GetTempPath());
        var tiled = s.Engine with { Tiles = new TileSettings { Cols = 2, Rows = 2 } };
        string[] files = Bottles(4);
        float[][][][] Alone(EngineSettings e) => [.. files.Select(f =>
        {
            using var img = DecodedImage.FromFile(f);
            var inspector = new FrameInspector(Backbone.Value, e);
            var tiles = inspector.Extract(img)!;
            float[][][] copy = [.. tiles.Select(t => t.Views.Select(v => v.ToArray()).ToArray())];
            inspector.Release(tiles);
            return copy;
        })];
        var expected = new[] { Alone(s.Engine), Alone(tiled) };
        var mismatches = new ConcurrentQueue<string>();
        const int cameras = 4, rounds = 8;
        Parallel.For(0, cameras, new ParallelOptions { MaxDegreeOfParallelism = cameras }, c =>
        {
            var inspector = new FrameInspector(Backbone.Value, c % 2 == 0 ? s.Engine : tiled);
            var images = files.Select(DecodedImage.FromFile).ToArray();
            try
            {
                for (int r = 0; r < rounds; r++)
                {
                    int i = (c + r) % files.Length;
                    var tiles = inspector.Extract(images[i])!;
                    var want = expected[c % 2][i];
                    for (int t = 0; t < tiles.Length; t++)
                    {
                        for (int v = 0; v < tiles[t].Views.Length; v++)
                        {
                            if (!tiles[t].Views[v].AsSpan().SequenceEqual(want[t][v])) mismatches.Enqueue($"camera {c}, round {r}, image {i}, tile {t}, view {v}");
                        }
                    }
                    inspector.Release(tiles);
                }
            }
            finally
            {
                foreach (var m in images) m.Dispose();
            }
        });
        Assert.Empty(mismatches);
    }

    [Fact]
    public void A_backbone_freed_while_a_camera_still_extracts_fails_that_frame_and_never_the_process()
    {
        // A reload swaps the model once the pipelines have stopped, and gives up waiting after a while: a
        // camera that outlived that wait must meet an error, not a freed native session.
        var s = Settings(Path.GetTempPath());
        var shared = new SharedBackbone(new OnnxBackbone(SharedBackbone.OptionsFrom(s.Model)));
        using var img = DecodedImage.FromFile(Bottles(1)[0]);
        var inspector = new FrameInspector(shared, s.Engine);
        int extracted = 0;
        Exception? failure = null;
        var camera = new Thread(() =>
        {
            try
            {
                while (true)
                {
                    inspector.Release(inspector.Extract(img)!);
                    Interlocked.Increment(ref extracted);
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        camera.Start();
        while (Volatile.Read(ref extracted) < 2) Thread.Sleep(10);
        shared.Dispose(); // waits for the forward in flight, then frees the session
        Assert.True(camera.Join(TimeSpan.FromSeconds(30)), "the camera thread did not stop");
        Assert.IsType<ObjectDisposedException>(failure);
    }
}
