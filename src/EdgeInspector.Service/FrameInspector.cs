using EdgeInspector.Cameras;
using EdgeInspector.Configuration;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Imaging;
using EdgeInspector.Inference.Onnx;

namespace EdgeInspector.Service;

/// <summary>
/// One camera's engine: decoded frames in, engine results out. Owns the camera's reservoir,
/// projection, feature pools and batch tensor; shares the backbone with the other cameras (one model in
/// memory, one forward at a time). Not thread-safe: used by its pipeline's inference loop only.
/// </summary>
internal class FrameInspector
{
    private readonly SharedBackbone _backbone;
    private readonly ImagePreprocessor _pre;
    private readonly ViewProjector? _projector;
    private readonly FrameFeaturesPool _rawPool, _pool;
    private float[] _tensor = [];

    public FrameInspector(SharedBackbone backbone, EngineSettings engine, PixelRect? roi = null)
    {
        _backbone = backbone;
        Roi = roi;
        var b = backbone.Model;
        _pre = new ImagePreprocessor(b.Options.InputWidth, b.Options.InputHeight, b.Options.ChannelOrder == "rgb", b.Options.Mean, b.Options.Std);
        var options = engine.Options;
        _projector = options.ScoreDims > 0 ? new ViewProjector(b.Layout, options.ScoreDims, ViewProjector.DefaultSeed) : null;
        var layout = _projector?.Target ?? b.Layout;
        _rawPool = new FrameFeaturesPool(b.Layout);
        _pool = _projector is null ? _rawPool : new FrameFeaturesPool(layout);
        Engine = new ReservoirEngine(layout, options, _pool.Return);
    }

    public ReservoirEngine Engine { get; }

    /// <summary>The camera's region of interest: all the backbone sees of a frame (null: the whole frame).</summary>
    public PixelRect? Roi { get; }

    public int GridWidth => Engine.Layout.GridWidth;

    public int GridHeight => Engine.Layout.GridHeight;

    /// <summary>
    /// Extracts features of the decoded images (null entries are skipped) into projected frames, in order.
    /// </summary>
    /// <remarks>Virtual: the seam a stage test uses to make the backbone fail.</remarks>
    public virtual FrameFeatures?[] Extract(IReadOnlyList<DecodedImage?> images)
    {
        int size = _backbone.Model.ImageSize;
        if (_tensor.Length < images.Count * size) _tensor = new float[images.Count * size];
        var slot = new int[images.Count];
        int good = 0;
        for (int i = 0; i < images.Count; i++)
        {
            slot[i] = -1;
            if (images[i] is not { } img) continue;
            if (Roi is { } roi)
            {
                using var region = img.Region(roi);
                _pre.Write(region, _tensor.AsSpan(good * size, size));
            }
            else
            {
                _pre.Write(img, _tensor.AsSpan(good * size, size));
            }
            slot[i] = good++;
        }
        var result = new FrameFeatures?[images.Count];
        if (good == 0) return result;
        var raw = new FrameFeatures[good];
        for (int i = 0; i < good; i++) raw[i] = _rawPool.Rent();
        _backbone.Extract(_tensor, good, raw);
        for (int i = 0; i < images.Count; i++)
        {
            if (slot[i] < 0) continue;
            var f = raw[slot[i]];
            if (_projector is { } p)
            {
                var projected = _pool.Rent();
                p.Project(f, projected);
                _rawPool.Return(f);
                f = projected;
            }
            result[i] = f;
        }
        return result;
    }

    /// <summary>
    /// Runs the whole extraction path (preprocessing, backbone, views, projection) on a synthetic frame,
    /// <paramref name="rounds"/> times alone and <paramref name="rounds"/> times in a batch of
    /// <paramref name="batch"/>, and forgets the result. The first calls of a fresh process are several
    /// times slower than the rest (the runtime's and ONNX Runtime's first-use work); done before the
    /// camera starts, they cost no part its deadline.
    /// </summary>
    public void Prime(int batch, int rounds)
    {
        const int side = 256;
        var pixels = new byte[side * side * 3];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(64 + (i * 7 % 128));
        var images = new List<DecodedImage?>();
        try
        {
            for (int n = 1; n <= batch; n++) images.Add(DecodedImage.FromRaw(pixels, side, side, RawLayout.Bgr8, "priming frame"));
            foreach (int size in batch > 1 ? new[] { 1, batch } : [1])
            {
                var slice = images.GetRange(0, size);
                for (int r = 0; r < rounds; r++)
                {
                    foreach (var f in Extract(slice)) if (f is not null) Release(f);
                }
            }
        }
        finally
        {
            foreach (var m in images) m?.Dispose();
        }
    }

    /// <summary>Hands a frame that will not be pushed back to its pool.</summary>
    public void Release(FrameFeatures f) => _pool.Return(f);

    /// <summary>Seeds the reservoir from known-good images (few-shot start).</summary>
    public int SeedKnownGood(string folder)
    {
        var files = FolderReplaySource.ListImages(folder);
        var goods = new List<FrameFeatures>();
        foreach (var chunk in files.Chunk(8))
        {
            var mats = new List<DecodedImage?>();
            try
            {
                foreach (string f in chunk)
                {
                    try { mats.Add(DecodedImage.FromFile(f)); }
                    catch (ImageDecodeException) { mats.Add(null); }
                }
                goods.AddRange(Extract(mats).OfType<FrameFeatures>());
            }
            finally
            {
                foreach (var m in mats) m?.Dispose();
            }
        }
        Engine.SeedKnownGood(goods);
        foreach (var g in goods) _pool.Return(g);
        return goods.Count;
    }
}

/// <summary>The backbone every camera shares: one session, one forward at a time.</summary>
internal sealed class SharedBackbone(OnnxBackbone model) : IDisposable
{
    private readonly Lock _gate = new();

    public OnnxBackbone Model => model;

    public void Extract(float[] tensor, int count, IReadOnlyList<FrameFeatures> outputs)
    {
        lock (_gate) model.Extract(tensor, count, outputs);
    }

    public void Dispose() => model.Dispose();

    public static BackboneOptions OptionsFrom(ModelSettings m) => new()
    {
        ModelPath = m.Path,
        InputWidth = m.InputWidth,
        InputHeight = m.InputHeight,
        ChannelOrder = m.ChannelOrder,
        Mean = [.. m.Mean.Select(x => (float)x)],
        Std = [.. m.Std.Select(x => (float)x)],
        Taps = m.Taps,
        ExecutionProviders = m.Providers,
        TensorRtFp16 = m.TensorRtFp16,
        TensorRtCacheDir = m.TensorRtCache,
        IntraOpThreads = m.Threads,
    };
}
