using EdgeInspector.Core.Features;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;

namespace EdgeInspector.Core.Tests;

/// <summary>The engine over tiles: per position or pooled, frames finished when all their tiles are.</summary>
public sealed class TiledEngineTests
{
    private static EngineOptions Small() => EngineOptions.Default with { Batch = 8, TopN = 2, ReservoirFrames = 6, ReservoirKeep = 1 };

    [Fact]
    public void A_held_entrys_frame_is_its_id_or_in_a_pooled_engine_the_id_its_tiles_were_numbered_from()
    {
        var line = new SyntheticLine();
        using var perPosition = new TiledEngine(line.Layout, Small(), 4, pooled: false);
        using var pooled = new TiledEngine(line.Layout, Small(), 4, pooled: true);
        Assert.Equal(7, perPosition.FrameOf(7));
        Assert.Equal(-2, perPosition.FrameOf(-2));
        // Frame f's tiles are f·4 + t: 28..31 are frame 7's; a known-good image's, −1 − i, floor too.
        Assert.Equal([7L, 7, 7, 7, 8], new long[] { 28, 29, 30, 31, 32 }.Select(pooled.FrameOf));
        Assert.Equal([-1L, -1, -2], new long[] { -1, -4, -5 }.Select(pooled.FrameOf));
    }

    [Fact]
    public void One_tile_over_the_grid_is_the_plain_engine()
    {
        // The plain twin: a region the size of the patch grid in one tile stitches to the grid itself.
        var a = new SyntheticLine();
        var b = new SyntheticLine();
        var plain = new ReservoirEngine(a.Layout, Small());
        var tiled = new TiledEngine(b.Layout, Small(), 1, pooled: false);
        var whole = TileGrid.Whole(b.Layout.GridWidth, b.Layout.GridHeight);
        var ra = new List<StreamResult>();
        var rb = new List<TiledResult>();
        for (int i = 0; i < 20; i++)
        {
            ra.AddRange(plain.Push(a.Frame(i % 7 == 3), i));
            rb.AddRange(tiled.Push([b.Frame(i % 7 == 3)], whole, i));
        }
        Assert.Equal(20, rb.Count);
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(ra[i].FrameId, rb[i].FrameId);
            Assert.Equal(ra[i].Image, rb[i].Image);
            Assert.Equal(ra[i].Calibrated, rb[i].Calibrated);
            Assert.Equal(ra[i].WarmUp, rb[i].WarmUp);
            Assert.Equal(ra[i].Patches, rb[i].Patches);
            Assert.Equal(ra[i].ReferenceFrames, rb[i].ReferenceFrames);
        }
    }

    [Fact]
    public void After_a_warm_restart_references_stay_oldest_first_though_new_ids_are_smaller()
    {
        // A caller's ids may start again below the ones it gave before a restart (a service whose frame
        // counter was lost), so the frames learned before it carry larger ids than the ones after it. An
        // audit reads the references oldest first, not by id.
        var line = new SyntheticLine();
        var before = new ReservoirEngine(line.Layout, Small());
        for (int i = 0; i < 20; i++) before.Push(line.Frame(false), 1000 + i);
        var state = before.Capture();
        var plain = new ReservoirEngine(line.Layout, Small());
        var tiled = new TiledEngine(line.Layout, Small(), 1, pooled: false);
        plain.Restore(state);
        tiled.Restore([state]);
        var whole = TileGrid.Whole(line.Layout.GridWidth, line.Layout.GridHeight);
        TiledResult? last = null;
        for (int i = 1; i <= 4; i++)
        {
            var f = line.Frame(false);
            var ra = Assert.Single(plain.Push(f, i));
            last = Assert.Single(tiled.Push([f], whole, i));
            Assert.Equal(ra.ReferenceFrames, last.ReferenceFrames);
        }
        // The reservoir holds the older run's last frames, then frames 1..3 of this one.
        Assert.Equal([1017L, 1018, 1019, 1, 2, 3], last!.ReferenceFrames);
    }

    [Fact]
    public void The_memory_bound_counts_every_tile_and_holds_what_the_engine_holds()
    {
        var line = new SyntheticLine();
        // By hand. A frame's features: 36 patches × (16 + 16) floats and a 16-float global feature, so
        // 4 × 1,168 = 4,672 bytes. A reservoir frame keeps all 36 patches (keep 1), a byte per feature per view:
        // 2 views × 36 × 16 = 1,152 bytes, and the 36 kept patches' indices, 144 bytes. Keeping every
        // patch, it searches no window.
        long one = 8 * 4_672 + 6 * 1_296; // batch 8, reservoir 6
        Assert.Equal(one, ReservoirEngine.MemoryBound(line.Layout, Small()));
        Assert.Equal(4 * one, TiledEngine.MemoryBound(line.Layout, Small(), 4, pooled: false));
        Assert.Equal(4 * one, TiledEngine.MemoryBound(line.Layout, Small(), 4, pooled: true)); // one engine, four times the frames
        Assert.Equal(8 * 4_672 + 3 * 1_296, ReservoirEngine.MemoryBound(line.Layout, Small() with { ReservoirFrames = 3 }));

        // The plain twin: what the engine holds, counted from its arrays, as it fills.
        var engine = new TiledEngine(line.Layout, Small(), 4, pooled: false);
        var grid = TileGrid.Create(12, 12, 2, 2, 0);
        long peak = 0;
        for (int i = 0; i < 20; i++)
        {
            engine.Push([line.Frame(false), line.Frame(false), line.Frame(false), line.Frame(false)], grid, i);
            if (i == 6) Assert.Equal(4 * 7 * 4_672, engine.HeldBytes); // seven frames' tiles wait for the batch
            peak = Math.Max(peak, engine.HeldBytes);
        }
        Assert.Equal(4 * 6 * 1_296, engine.HeldBytes); // warm, the reservoir full, the batch let go
        Assert.True(peak <= engine.MemoryBoundBytes, $"held {peak} bytes, bound {engine.MemoryBoundBytes}");
    }

    [Fact]
    public void The_frames_that_may_wait_out_a_warm_up_are_what_the_limit_leaves_beside_the_bound()
    {
        // By hand, with the bound above: 4 tiles × (8 × 4,672 + 6 × 1,296) = 180,608 bytes; a waiting frame
        // is its 4 tiles' features, 4 × 4,672 = 18,688 bytes.
        var line = new SyntheticLine();
        var engine = new TiledEngine(line.Layout, Small(), 4, pooled: false);
        Assert.Equal(180_608, engine.MemoryBoundBytes);
        Assert.Equal(0, engine.FramesBeside(180_608));          // the bound alone reaches the limit
        Assert.Equal(0, engine.FramesBeside(100_000));          // a limit under the bound leaves nothing
        Assert.Equal(0, engine.FramesBeside(180_608 + 18_687)); // one byte short of a frame
        Assert.Equal(1, engine.FramesBeside(180_608 + 18_688));
        Assert.Equal(10, engine.FramesBeside(180_608 + 10 * 18_688 + 5));
        // One tile: the engine's bound is a quarter, a frame a quarter.
        var whole = new TiledEngine(line.Layout, Small(), 1, pooled: false);
        Assert.Equal(3, whole.FramesBeside(45_152 + 3 * 4_672));
    }

    [Fact]
    public void A_defect_on_one_tile_is_found_there_and_judged_against_that_positions_normal()
    {
        // Four tiles of a 12 x 12 region (2 x 2, no overlap), each a 6 x 6 patch grid; the defect is on tile 3 only.
        var line = new SyntheticLine();
        var engine = new TiledEngine(line.Layout, Small(), 4, pooled: false);
        var grid = TileGrid.Create(12, 12, 2, 2, 0);
        var results = new List<TiledResult>();
        for (int i = 0; i < 30; i++)
        {
            bool defect = i % 10 == 9;
            results.AddRange(engine.Push([line.Frame(false), line.Frame(false), line.Frame(false), line.Frame(defect)], grid, i));
        }
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (long)i), results.Select(r => r.FrameId));
        Assert.True(engine.IsWarm);
        Assert.Equal(4, engine.Engines.Count);
        var scored = results.Where(r => !r.WarmUp).ToList();
        var defects = scored.Where(r => r.FrameId % 10 == 9).ToList();
        var normals = scored.Where(r => r.FrameId % 10 != 9).ToList();
        Assert.NotEmpty(defects);
        Assert.All(defects, d => Assert.True(d.Calibrated > normals.Max(n => n.Calibrated), $"defect frame {d.FrameId} calibrated {d.Calibrated}"));
        Assert.All(defects, d => Assert.True(d.Image > normals.Max(n => n.Image)));
        // The stitched grid is the region at the tiles' pitch (12 x 12), and the defect block (the tile's top-left
        // 2 x 2 patches) lands at rows 6-7, columns 6-7, where tile 3 lies.
        var first = defects[0];
        Assert.Equal((12, 12), (first.GridHeight, first.GridWidth));
        int hottest = Array.IndexOf(first.Patches, first.Patches.Max());
        Assert.InRange(hottest / 12, 6, 7);
        Assert.InRange(hottest % 12, 6, 7);
    }

    [Fact]
    public void Pooled_tiles_of_one_frame_never_vouch_for_each_other()
    {
        // Every tile of a defect frame carries the same defect. Were a frame's own tiles references, each
        // would find the defect in its sibling and score as normal.
        var line = new SyntheticLine();
        var engine = new TiledEngine(line.Layout, Small(), 2, pooled: true);
        var grid = TileGrid.Create(12, 6, 2, 1, 0);
        var results = new List<TiledResult>();
        for (int i = 0; i < 24; i++)
        {
            bool defect = i == 20;
            results.AddRange(engine.Push([line.Frame(defect), line.Frame(defect)], grid, i));
        }
        Assert.Single(engine.Engines);
        Assert.Equal(16, engine.Engines[0].Options.Batch); // two tiles per frame: the batch spans 8 frames as a position's does
        var d = results.Single(r => r.FrameId == 20);
        Assert.True(d.Calibrated > EngineOptions.Default.QuarantineZ, $"defect frame calibrated {d.Calibrated}");
        Assert.True(d.Image > 3 * results.Where(r => !r.WarmUp && r.FrameId != 20).Max(r => r.Image));
        Assert.DoesNotContain(20L, d.ReferenceFrames); // references are frames, never the frame itself
        Assert.All(d.ReferenceFrames, id => Assert.InRange(id, 0, 19));
    }

    [Fact]
    public void Tiles_that_do_not_match_the_geometry_are_refused()
    {
        var line = new SyntheticLine();
        var engine = new TiledEngine(line.Layout, Small(), 4, pooled: false);
        Assert.Throws<ArgumentException>(() => engine.Push([line.Frame(false), line.Frame(false)], TileGrid.Create(12, 12, 2, 2, 0), 0));
        Assert.Throws<ArgumentException>(() => engine.Push([line.Frame(false), line.Frame(false), line.Frame(false), line.Frame(false)], TileGrid.Create(12, 12, 2, 1, 0), 0));
    }
}
