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
internal class FrameInspector : IDisposable
{
    private readonly SharedBackbone _backbone;
    private readonly ImagePreprocessor _pre;
    private readonly ViewProjector? _projector;
    private readonly FrameFeaturesPool _pool;
    private readonly bool _graphs;
    private float[] _tensor = [];
    private TileGrid? _grid;

    public FrameInspector(SharedBackbone backbone, EngineSettings engine, PixelRect? roi = null)
    {
        _backbone = backbone;
        Roi = roi;
        Tiling = engine.Tiles;
        var b = backbone.Model;
        _pre = new ImagePreprocessor(b.Options.InputWidth, b.Options.InputHeight, b.Options.ChannelOrder == "rgb", b.Options.Mean, b.Options.Std);
        var options = engine.Options;
        _projector = options.ScoreDims > 0 ? new ViewProjector(b.Layout, options.ScoreDims, ViewProjector.DefaultSeed) : null;
        var layout = EngineLayout(b.Layout, options);
        _pool = FrameFeaturesPool.ForCalls(layout, engine.InferenceBatch * Tiling.Count);
        // engine.scoring: the views and the reservoir's scoring run as graphs on the backbone's provider, or as
        // managed code (ScoringPath says which, per provider).
        _graphs = ScoringPath.ViewsOnGraph(engine.Scoring);
        bool scoring = ScoringPath.Scoring(engine.Scoring, b.ExecutionProvider) == ScoringPath.Onnx;
        Engine = new TiledEngine(layout, options, Tiling.Count, Tiling.Pooled, _pool.Return, scoring ? backbone.Scoring.Create : null);
    }

    /// <summary>Where the views are built: "onnx" (the views graph) or "managed".</summary>
    public string ViewsPath => _graphs ? ScoringPath.Onnx : ScoringPath.Managed;

    /// <summary>Frees the engine's kernel buffers (the graphs' slots on the provider); nothing for the managed kernel.</summary>
    public void Dispose() => Engine.Dispose();

    /// <summary>The layout the engine scores in: the backbone's, each view projected to <c>score_dims</c> (0: as it is).</summary>
    public static FeatureLayout EngineLayout(FeatureLayout backbone, EngineOptions options) =>
        options.ScoreDims > 0 ? ViewProjector.Projected(backbone, options.ScoreDims) : backbone;

    /// <summary>The camera's engine: one tile (the whole region) unless <c>engine.tiles</c> says otherwise.</summary>
    public TiledEngine Engine { get; }

    /// <summary>The camera's region of interest: all the backbone sees of a frame (null: the whole frame).</summary>
    public PixelRect? Roi { get; }

    /// <summary>How the region is cut into tiles.</summary>
    public TileSettings Tiling { get; }

    /// <summary>The region and tiling, as a snapshot records what it learned from.</summary>
    public string RegionKey => (Roi?.ToString() ?? SnapshotKey.WholeFrame) + (Tiling.Describe() is { Length: > 0 } t ? $" in {t}" : "");

    /// <summary>
    /// The frame's region cut into tiles. A region the frame does not hold, or tiles smaller than the model's
    /// input, is that frame's error (an <see cref="ImageDecodeException"/> naming the setting).
    /// </summary>
    public TileGrid Cut(DecodedImage image, string origin, string camera)
    {
        if (Roi is { } r && !image.Contains(r))
        {
            throw new ImageDecodeException($"{origin}: the frame is {image.Width}×{image.Height}; cameras[{camera}].roi {r} reaches beyond it (x + width and y + height must fit the frame).");
        }
        var region = Roi ?? new PixelRect(0, 0, image.Width, image.Height);
        // A camera's frames keep their size: the grid is cut once, not per frame.
        if (_grid is not { } grid || grid.RoiWidth != region.Width || grid.RoiHeight != region.Height)
        {
            _grid = grid = TileGrid.Create(region.Width, region.Height, Tiling.Cols, Tiling.Rows, Tiling.Overlap);
        }
        var o = _backbone.Model.Options;
        if (Tiling.Count > 1 && (grid.TileWidth < o.InputWidth || grid.TileHeight < o.InputHeight))
        {
            throw new ImageDecodeException($"{origin}: engine.tiles {Tiling.Cols}x{Tiling.Rows} cuts its {region.Width}×{region.Height} region into {grid.TileWidth}×{grid.TileHeight} tiles, smaller than the model's {o.InputWidth}×{o.InputHeight} input; use fewer tiles, or a larger cameras[{camera}].roi.");
        }
        return grid;
    }

    /// <summary>
    /// Extracts each frame's tiles (as <paramref name="geometry"/> cuts its region) into projected features,
    /// all tiles of all frames in one backbone batch; a null image or geometry is skipped (null result).
    /// </summary>
    /// <remarks>Virtual: the seam a stage test uses to make the backbone fail.</remarks>
    public virtual FrameFeatures[]?[] Extract(IReadOnlyList<DecodedImage?> images, IReadOnlyList<TileGrid?> geometry)
    {
        int size = _backbone.Model.ImageSize, tiles = Tiling.Count;
        if (_tensor.Length < images.Count * tiles * size) _tensor = new float[images.Count * tiles * size];
        var slot = new int[images.Count];
        int good = 0;
        for (int i = 0; i < images.Count; i++)
        {
            slot[i] = -1;
            if (images[i] is not { } img || geometry[i] is not { } grid) continue;
            _pre.WriteTiles(img, Roi ?? new PixelRect(0, 0, img.Width, img.Height), grid, _tensor.AsSpan(good * tiles * size, tiles * size));
            slot[i] = good++;
        }
        var result = new FrameFeatures[]?[images.Count];
        if (good == 0) return result;
        // The views come out projected (the projection fused into the view building, before the pooling).
        var features = new FrameFeatures[good * tiles];
        for (int i = 0; i < features.Length; i++) features[i] = _pool.Rent();
        _backbone.Extract(_tensor, features.Length, features, _projector, _graphs);
        for (int i = 0; i < images.Count; i++)
        {
            if (slot[i] < 0) continue;
            result[i] = features.AsSpan(slot[i] * tiles, tiles).ToArray();
        }
        return result;
    }

    /// <summary>One frame, whole region (the tests' and the seeding's shorthand).</summary>
    public FrameFeatures[]? Extract(DecodedImage image) => Extract([image], [Cut(image, "image", "-")])[0];

    /// <summary>Hands a frame's tiles that will not be pushed back to their pool.</summary>
    public void Release(FrameFeatures[] tiles)
    {
        foreach (var f in tiles) _pool.Return(f);
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
        var o = _backbone.Model.Options;
        int width = Math.Max(256, o.InputWidth) * Tiling.Cols, height = Math.Max(256, o.InputHeight) * Tiling.Rows;
        var pixels = new byte[width * height * 3];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(64 + (i * 7 % 128));
        var images = new List<DecodedImage?>();
        var geometry = new List<TileGrid?>();
        var grid = TileGrid.Create(width, height, Tiling.Cols, Tiling.Rows, Tiling.Overlap);
        try
        {
            for (int n = 1; n <= batch; n++)
            {
                images.Add(DecodedImage.FromRaw(pixels, width, height, RawLayout.Bgr8, "priming frame"));
                geometry.Add(grid);
            }
            foreach (int size in batch > 1 ? new[] { 1, batch } : [1])
            {
                for (int r = 0; r < rounds; r++)
                {
                    foreach (var f in Extract(images.GetRange(0, size), geometry.GetRange(0, size))) if (f is not null) Release(f);
                }
            }
        }
        finally
        {
            foreach (var m in images) m?.Dispose();
        }
    }

    /// <summary>Seeds the reservoir from known-good images (few-shot start).</summary>
    public int SeedKnownGood(string folder)
    {
        var files = FolderReplaySource.ListImages(folder);
        var goods = new List<FrameFeatures[]>();
        foreach (var chunk in files.Chunk(8))
        {
            var mats = new List<DecodedImage?>();
            var cuts = new List<TileGrid?>();
            try
            {
                foreach (string f in chunk)
                {
                    // An image that cannot be read or cut is left out: Extract skips a null image or cut.
                    DecodedImage? image = null;
                    TileGrid? cut = null;
                    try
                    {
                        image = DecodedImage.FromFile(f);
                        cut = Cut(image, f, "-");
                    }
                    catch (ImageDecodeException) { }
                    mats.Add(image);
                    cuts.Add(cut);
                }
                goods.AddRange(Extract(mats, cuts).OfType<FrameFeatures[]>());
            }
            finally
            {
                foreach (var m in mats) m?.Dispose();
            }
        }
        Engine.SeedKnownGood(goods);
        foreach (var g in goods) Release(g);
        return goods.Count;
    }
}

/// <summary>The backbone every camera shares: one session, one forward at a time.</summary>
internal sealed class SharedBackbone(OnnxBackbone model) : IDisposable
{
    private readonly Lock _gate = new();
    private bool _disposed;

    private OnnxScoring? _scoring;

    public OnnxBackbone Model => model;

    /// <summary>The scoring graphs' sessions on the backbone's provider, shared by every camera (made when first asked for).</summary>
    public OnnxScoring Scoring
    {
        get
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return _scoring ??= new OnnxScoring(model.ExecutionProvider, model.Options);
            }
        }
    }

    public void Extract(float[] tensor, int count, IReadOnlyList<FrameFeatures> outputs, ViewProjector? projector, bool viewsOnGraph = false)
    {
        lock (_gate)
        {
            // A pipeline that outlived its stop (a reload swaps the model once the pipelines stop, or give
            // up waiting) gets an error for that frame, not a call into a freed native session.
            ObjectDisposedException.ThrowIf(_disposed, this);
            model.Extract(tensor, count, outputs, projector, viewsOnGraph);
        }
    }

    /// <summary>Frees the session once no forward is running on it.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _scoring?.Dispose();
            model.Dispose();
        }
    }

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
