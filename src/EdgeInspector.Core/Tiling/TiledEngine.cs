using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;

namespace EdgeInspector.Core.Tiling;

/// <summary>
/// One frame's verdict material from its tiles. <c>Patches</c> is the stitched patch grid over the region
/// (<c>GridHeight</c> × <c>GridWidth</c>); <c>TilePatches</c> each tile's own grid, numbered as <c>Geometry</c>
/// numbers the tiles. <c>Image</c> is the mean of the top-N patches of the stitched grid, over the whole
/// region; <c>Calibrated</c> the worst tile's calibrated score (each tile is judged against what is normal
/// for it); <c>ReferenceFrames</c> the frames whose tiles scored this frame's, each once.
/// </summary>
public sealed record TiledResult(long FrameId, float[] Patches, int GridHeight, int GridWidth, float[][] TilePatches, TileGrid Geometry,
    float Image, float Calibrated, bool WarmUp, long[] ReferenceFrames);

/// <summary>
/// The line's engine over tiles. Position-aware (the default): one <see cref="ReservoirEngine"/> per tile
/// position, so tile (i,j) is scored against tile (i,j) of earlier frames and learns what that part of the
/// frame looks like. Pooled: one engine that scores every tile against every tile of the reservoir, for
/// textures and for parts that turn; its warm-up batch and reservoir hold as many frames' worth of tiles
/// as a position's do. A frame's result is ready when all of its tiles' are.
/// </summary>
/// <remarks>Not thread-safe: one instance per camera pipeline, as <see cref="ReservoirEngine"/>.</remarks>
public sealed class TiledEngine : IDisposable
{
    private readonly ReservoirEngine[] _engines;
    private readonly Dictionary<long, (StreamResult?[] Tiles, TileGrid Geometry)> _pending = [];

    public TiledEngine(FeatureLayout layout, EngineOptions options, int tiles, bool pooled, Action<FrameFeatures>? release = null, ReservoirKernelFactory? kernel = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tiles, 1);
        Tiles = tiles;
        Pooled = pooled;
        Options = options;
        Layout = layout;
        var each = Each(options, tiles, pooled);
        _engines = new ReservoirEngine[pooled ? 1 : tiles];
        // Pooled, the tiles of one frame overlap and show one part: none may vouch for another.
        Func<long, long>? part = pooled ? id => FloorDiv(id, tiles) : null;
        for (int e = 0; e < _engines.Length; e++) _engines[e] = new ReservoirEngine(layout, each, release, part, kernel);
    }

    public int Tiles { get; }

    /// <summary>The scoring path the engines run: "managed" or "onnx".</summary>
    public string ScoringPath => _engines[0].ScoringPath;

    /// <summary>Frees what the engines' kernels hold.</summary>
    public void Dispose()
    {
        foreach (var e in _engines) e.Dispose();
    }

    // A pooled engine's batch and reservoir hold as many frames' worth of tiles as the positions' do.
    private static EngineOptions Each(EngineOptions options, int tiles, bool pooled) =>
        pooled ? options with { Batch = options.Batch * tiles, ReservoirFrames = options.ReservoirFrames * tiles } : options;

    /// <summary>
    /// The most a tiled engine holds of what it learns (<see cref="ReservoirEngine.MemoryBound"/>, over
    /// every position or the pooled engine): it grows with the number of tiles.
    /// </summary>
    public static long MemoryBound(FeatureLayout layout, EngineOptions options, int tiles, bool pooled) =>
        (pooled ? 1 : tiles) * ReservoirEngine.MemoryBound(layout, Each(options, tiles, pooled));

    /// <summary>This engine's <see cref="MemoryBound(FeatureLayout, EngineOptions, int, bool)"/>.</summary>
    public long MemoryBoundBytes => MemoryBound(Layout, Options, Tiles, Pooled);

    /// <summary>
    /// How many more frames, each with all its tiles' features, fit in <paramref name="limitBytes"/> beside
    /// this engine's bound (0 when the bound alone reaches it): what may wait out a warm-up.
    /// </summary>
    public int FramesBeside(long limitBytes) => FramesBeside(Layout, Options, Tiles, Pooled, limitBytes);

    /// <inheritdoc cref="FramesBeside(long)"/>
    public static int FramesBeside(FeatureLayout layout, EngineOptions options, int tiles, bool pooled, long limitBytes)
    {
        long left = limitBytes - MemoryBound(layout, options, tiles, pooled);
        return left <= 0 ? 0 : (int)Math.Min(int.MaxValue, left / (tiles * FrameFeatures.BytesFor(layout)));
    }

    /// <summary>Bytes held now, over every engine.</summary>
    public long HeldBytes
    {
        get
        {
            long bytes = 0;
            foreach (var e in _engines) bytes += e.HeldBytes;
            return bytes;
        }
    }

    public bool Pooled { get; }

    /// <summary>The settings of one position (a pooled engine's batch and reservoir are these times <see cref="Tiles"/>).</summary>
    public EngineOptions Options { get; }

    /// <summary>The layout of one tile's features.</summary>
    public FeatureLayout Layout { get; }

    /// <summary>The engines: one per tile position, or the pooled one.</summary>
    public IReadOnlyList<ReservoirEngine> Engines => _engines;

    public bool IsWarm => _engines.All(e => e.IsWarm);

    public bool IsCalibrated => _engines.All(e => e.IsCalibrated);

    /// <summary>Frames buffered for the warm-up batch.</summary>
    public int WarmupBuffered => _engines[0].WarmupBuffered / (Pooled ? Tiles : 1);

    /// <summary>Frames (of tiles) held in a position's reservoir.</summary>
    public int ReservoirFrames => _engines[0].Reservoir.Count / (Pooled ? Tiles : 1);

    /// <summary>Tiles kept out of learning because they looked anomalous, over all positions.</summary>
    public long Quarantined
    {
        get
        {
            long n = 0;
            foreach (var e in _engines) n += e.Quarantined;
            return n;
        }
    }

    /// <summary>The raw tile score at calibrated score <paramref name="z"/>, averaged over the positions: a colour scale for heatmaps.</summary>
    public float RawScoreAt(float z)
    {
        float sum = 0;
        foreach (var e in _engines) sum += e.RawScoreAt(z);
        return sum / _engines.Length;
    }

    /// <summary>What was learned, one state per engine (position, or the pooled one).</summary>
    public IReadOnlyList<LearnedState> Capture()
    {
        var states = new LearnedState[_engines.Length];
        for (int e = 0; e < states.Length; e++) states[e] = _engines[e].Capture();
        return states;
    }

    /// <summary>The frame a held entry's id belongs to: a pooled engine holds each frame's tiles under ids of their own.</summary>
    public long FrameOf(long heldId) => Pooled ? FloorDiv(heldId, Tiles) : heldId;

    /// <summary>Takes up states from <see cref="Capture"/>; refused (ArgumentException) when their number is not this engine's.</summary>
    public void Restore(IReadOnlyList<LearnedState> states)
    {
        if (states.Count != _engines.Length) throw new ArgumentException($"{states.Count} learned state(s) for {_engines.Length} engine(s).", nameof(states));
        for (int e = 0; e < states.Count; e++) _engines[e].Restore(states[e]);
        _pending.Clear();
    }

    /// <summary>Where the engines' parallel loops run (see <see cref="ReservoirEngine.Parallelism"/>).</summary>
    public ParallelOptions Parallelism
    {
        get => _engines[0].Parallelism;
        set
        {
            foreach (var e in _engines) e.Parallelism = value;
        }
    }

    /// <summary>
    /// Takes the next frame's tiles (as <paramref name="geometry"/> numbers them) in line order. Returns the
    /// frames whose every tile has a result: none while warming up, the warm-up batch, then one per frame.
    /// </summary>
    public IReadOnlyList<TiledResult> Push(IReadOnlyList<FrameFeatures> tiles, TileGrid geometry, long id)
    {
        if (tiles.Count != Tiles || geometry.Count != Tiles) throw new ArgumentException($"Frame {id}: {tiles.Count} tiles in a geometry of {geometry.Count}; the engine takes {Tiles}.", nameof(tiles));
        _pending[id] = (new StreamResult?[Tiles], geometry);
        var done = new List<TiledResult>();
        for (int t = 0; t < Tiles; t++)
        {
            long tileId = Pooled ? id * Tiles + t : id;
            foreach (var r in _engines[Pooled ? 0 : t].Push(tiles[t], tileId)) Take(r, Pooled ? -1 : t, done);
        }
        return done;
    }

    /// <summary>Scores what waits for the warm-up batch (at least two frames' tiles), as at the end of a line.</summary>
    public IReadOnlyList<TiledResult> Flush()
    {
        var done = new List<TiledResult>();
        for (int e = 0; e < _engines.Length; e++)
        {
            foreach (var r in _engines[e].Flush()) Take(r, Pooled ? -1 : e, done);
        }
        return done;
    }

    /// <summary>Forgets what was learned (and the frames waiting for their tiles).</summary>
    public void Reset()
    {
        foreach (var e in _engines) e.Reset();
        _pending.Clear();
    }

    /// <summary>Few-shot start from known-good frames, each given as its tiles.</summary>
    public void SeedKnownGood(IReadOnlyList<IReadOnlyList<FrameFeatures>> goods)
    {
        if (Pooled)
        {
            var all = new List<FrameFeatures>();
            foreach (var g in goods) all.AddRange(g);
            _engines[0].SeedKnownGood(all);
            return;
        }
        for (int t = 0; t < Tiles; t++)
        {
            var position = new List<FrameFeatures>(goods.Count);
            foreach (var g in goods) position.Add(g[t]);
            _engines[t].SeedKnownGood(position);
        }
    }

    private void Take(StreamResult r, int tile, List<TiledResult> done)
    {
        long frame = tile < 0 ? r.FrameId / Tiles : r.FrameId;
        int t = tile < 0 ? (int)(r.FrameId % Tiles) : tile;
        if (!_pending.TryGetValue(frame, out var p)) return; // reset since it was pushed
        p.Tiles[t] = r;
        foreach (var x in p.Tiles) if (x is null) return;
        _pending.Remove(frame);
        done.Add(Finish(frame, p.Tiles!, p.Geometry));
    }

    private TiledResult Finish(long frame, StreamResult?[] tiles, TileGrid geometry)
    {
        var grids = new float[Tiles][];
        for (int t = 0; t < Tiles; t++) grids[t] = tiles[t]!.Patches;
        // One tile is the frame's own grid: the untiled engine's result, exactly (its image score and its
        // references, oldest first).
        if (Tiles == 1)
        {
            var r = tiles[0]!;
            return new TiledResult(frame, r.Patches, Layout.GridHeight, Layout.GridWidth, grids, geometry, r.Image, r.Calibrated, r.WarmUp, r.ReferenceFrames);
        }
        float calibrated = float.NegativeInfinity;
        bool warmUp = false;
        // Each tile lists its references oldest first; the union keeps the order in which they are first
        // named. A pooled reference is a tile: the frame it came from is what an audit looks up.
        var references = new List<long>();
        var seen = new HashSet<long>();
        for (int t = 0; t < Tiles; t++)
        {
            var r = tiles[t]!;
            calibrated = Math.Max(calibrated, r.Calibrated);
            warmUp |= r.WarmUp;
            foreach (long id in r.ReferenceFrames)
            {
                long source = FrameOf(id);
                if (seen.Add(source)) references.Add(source);
            }
        }
        var (gh, gw) = StitchedGrid(Layout.GridHeight, Layout.GridWidth, geometry);
        var stitched = new float[gh * gw];
        TileStitcher.Stitch(geometry, grids, Layout.GridHeight, Layout.GridWidth, stitched, gw, gh);
        float image = FrameScore.TopN(stitched, Options.TopN).Image;
        return new TiledResult(frame, stitched, gh, gw, grids, geometry, image, calibrated, warmUp, [.. references]);
    }

    /// <summary>The stitched grid's size: the region at the tiles' patch pitch.</summary>
    public static (int Height, int Width) StitchedGrid(int tileGridHeight, int tileGridWidth, TileGrid geometry) => (
        Math.Max(1, (int)Math.Round((double)tileGridHeight * geometry.RoiHeight / geometry.TileHeight)),
        Math.Max(1, (int)Math.Round((double)tileGridWidth * geometry.RoiWidth / geometry.TileWidth)));

    // Known-good seeds have negative ids: -1 - i for tile i*Tiles + t stays below zero after the division.
    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);
}
