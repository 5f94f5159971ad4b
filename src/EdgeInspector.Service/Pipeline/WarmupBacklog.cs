using EdgeInspector.Core.Features;
using EdgeInspector.Core.Tiling;

namespace EdgeInspector.Service;

/// <summary>
/// The frames that arrive while the warm-up batch is being scored. Each is answered <c>warming_up</c> at
/// once; its features wait here and are pushed once the engine is warm, so that they still teach it. The
/// wait is bounded: at a line's full rate the low-priority build gets little CPU, and an unbounded wait
/// grew by a frame's features (2.4 MB a tile at the defaults) with every frame. It holds as many frames
/// as <c>engine.memory_mb</c> leaves beside the engine's own bound (<see cref="TiledEngine.FramesBeside"/>);
/// a frame past that is answered all the same and not learned from, and until the build is done the
/// inference stage does not run the backbone on such frames, so that the build gets the CPU.
/// </summary>
internal sealed class WarmupBacklog(Action<FrameFeatures[]> release)
{
    private readonly Queue<(long Id, FrameFeatures[] Tiles, TileGrid Geometry)> _frames = [];

    /// <summary>Frames it may hold during the current warm-up.</summary>
    public int Capacity { get; private set; }

    /// <summary>Frames waiting.</summary>
    public int Count => _frames.Count;

    /// <summary>Frames of the current warm-up whose features were let go because the backlog was full.</summary>
    public long NotKept { get; private set; }

    /// <summary>Starts a warm-up's backlog, holding at most <paramref name="capacity"/> frames.</summary>
    public void Open(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        Capacity = capacity;
        NotKept = 0;
        Skipped = 0;
    }

    /// <summary>True when it can keep no more frames this warm-up.</summary>
    public bool IsFull => _frames.Count >= Capacity;

    /// <summary>Keeps a frame's features to be pushed later; when full, releases them instead. True when kept.</summary>
    public bool Offer(long id, FrameFeatures[] tiles, TileGrid geometry)
    {
        if (IsFull)
        {
            release(tiles);
            NotKept++;
            return false;
        }
        _frames.Enqueue((id, tiles, geometry));
        return true;
    }

    /// <summary>Of <see cref="NotKept"/>, the frames the backbone did not run on.</summary>
    public long Skipped { get; private set; }

    /// <summary>Counts a frame of this warm-up that was not kept and has no features to release (the backbone did not run on it).</summary>
    public void Skip()
    {
        NotKept++;
        Skipped++;
    }

    /// <summary>The oldest waiting frame, if any; its features are the caller's to push and release.</summary>
    public bool TryTake(out (long Id, FrameFeatures[] Tiles, TileGrid Geometry) frame) => _frames.TryDequeue(out frame);

    /// <summary>Lets every waiting frame's features go (the warm-up was abandoned).</summary>
    public void Clear()
    {
        while (_frames.TryDequeue(out var f)) release(f.Tiles);
    }
}
