using System.Globalization;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;

namespace EdgeInspector.Eval;

/// <summary>Command-line options of edgeinspector-eval.</summary>
internal sealed record EvalOptions
{
    public string Category { get; init; } = "";
    public string[] Modes { get; init; } = ["stream"];
    public string Model { get; init; } = "";
    public string[] Taps { get; init; } = ["stage2", "stage3"];
    public int[] Degrees { get; init; } = [1, 3, 5];
    public int ImageSize { get; init; } = 224;
    public int Seed { get; init; }
    public int Limit { get; init; }
    public int Refs { get; init; }
    public string Out { get; init; } = "eval-out";
    public int InferBatch { get; init; } = 8;
    public bool Quiet { get; init; }
    public bool Dump { get; init; }
    /// <summary>The region of interest in image pixels, or null for the whole image.</summary>
    public PixelRect? Roi { get; init; }
    public int TileCols { get; init; } = 1;
    public int TileRows { get; init; } = 1;
    public double TileOverlap { get; init; }
    /// <summary>How tiles find their references: "position" (tile (i,j) against tile (i,j) of other frames) or "pooled" (every tile against every tile).</summary>
    public string TileRefs { get; init; } = "position";
    /// <summary>stream: where the views are built and the reservoir scores (<see cref="ScoringPath"/>).</summary>
    public string Scoring { get; init; } = ScoringPath.Default;
    /// <summary>A folder to write the scoring graphs, real frames' inputs and the CPU outputs into, or null.</summary>
    public string? ExportGraphs { get; init; }

    /// <summary>True when frames are cut (an ROI or more than one tile): maps are stitched over the ROI.</summary>
    public bool Tiled => Roi is not null || TileCols * TileRows > 1;

    public int TileCount => TileCols * TileRows;

    /// <summary>The engine's options: <see cref="EngineOptions.Default"/>, as the service's, unless a flag says otherwise. --batch also sets the yardsticks' batch.</summary>
    public EngineOptions Engine { get; init; } = EngineOptions.Default;

    private static readonly EngineOptions D = EngineOptions.Default;

    public static string Usage => $"""
        usage: edgeinspector-eval <category-dir> [options]

        Runs the anomaly engine over the test images of an MVTec-layout category (test/good,
        test/<defect>, ground_truth/<defect>/<name>_mask.png or <name>.png) in a seeded line order and
        reports accuracy, time per frame and peak memory per mode. A defective image without a mask is
        left out of the pixel metrics, with a warning (results.json: frames_without_mask).

          --mode musc|fslc|stream|all   scorers to run (default stream; 'all' runs the three)
          --model PATH                  backbone ONNX file (default: resnet50v2_features.onnx, looked up
                                        in ./models and ../shared/models)
          --taps a,b                    named outputs used as taps (default stage2,stage3)
          --degrees 1,3,5               local aggregation degrees (default 1,3,5)
          --image-size N                square input size in pixels, per tile when tiling (default 224)
          --roi x,y,w,h                 region of interest in image pixels, cut out before everything else
                                        (default: the whole image); with --roi or --tiles the pixel metrics
                                        are computed on the region at its full resolution
          --tiles CxR                   cut the region into C columns and R rows of tiles, each through the
                                        backbone at --image-size, all tiles of a frame in one batch (default 1x1)
          --tile-overlap F              share of a tile that neighbours overlap, 0 <= F < 1 (default 0)
          --tile-refs position|pooled   stream: tile (i,j) scored against tile (i,j) of other frames (position,
                                        default), or every tile against every other frame's tiles (pooled:
                                        textures, parts that turn); musc and fslc are always position-aware
          --batch N                     frames per MuSc/FSLC batch and in the engine's warm-up batch (default {D.Batch})
          --seed N                      seed of the line order shuffle (default 0)
          --limit N                     use only the first N frames of the line order (0 = all)
          --refs N                      seed the engine with N images of train/good (few-shot)
          --score-dims N                FSLC and stream: project each view to N dims before scoring (default {D.ScoreDims}; 0 = full width)
          --reservoir-frames R          stream: accepted frames in the reservoir (default {D.ReservoirFrames})
          --reservoir-keep X            stream: share of each reservoir frame's patches kept, k-center (default {D.ReservoirKeep})
          --reservoir-window R          stream: each reservoir frame also searched whole within R patches of a patch's
                                        position (default {D.ReservoirWindow}; -1 = off)
          --quarantine-z X              stream: frames calibrated above this stay out of the reservoir (default {D.QuarantineZ})
          --top-n N                     stream: patches averaged into the image score (default {D.TopN})
          --scoring auto|managed|onnx   stream: where the views are built and the reservoir scores: managed code,
                                        or ONNX Runtime graphs on the backbone's provider (default auto: both
                                        graphs on a GPU provider; on the CPU the views graph, managed scoring)
          --export-graphs DIR           write the scoring graphs of this run's shape, the first scored frames'
                                        inputs and the CPU outputs, and the views graph with two frames' taps
                                        and views, to DIR (what scripts/device-check.sh replays)
          --infer-batch N               images per backbone run (default 8)
          --out DIR                     output folder (default eval-out)
          --quiet                       no progress bar
          --dump                        whole-image runs: also write every frame's patch grid and image score
                                        (DIR/grids_<mode>.bin), the line order (DIR/frames.txt) and the
                                        masks (DIR/masks.bin) for analysis
        """;

    public static EvalOptions Parse(string[] args)
    {
        var o = new EvalOptions();
        string? category = null;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next()
            {
                if (i + 1 >= args.Length) throw new UsageException($"{a} needs a value.");
                return args[++i];
            }
            int Int(int min)
            {
                string s = Next();
                if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min) throw new UsageException($"{a}: '{s}' is not an integer >= {min}.");
                return v;
            }
            double Dbl(double min)
            {
                string s = Next();
                if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || v < min) throw new UsageException($"{a}: '{s}' is not a number >= {min}.");
                return v;
            }
            switch (a)
            {
                case "--mode":
                    string m = Next();
                    o = o with { Modes = m == "all" ? ["musc", "fslc", "stream"] : m.Split(',') };
                    foreach (string mode in o.Modes)
                    {
                        if (mode is not ("musc" or "fslc" or "stream")) throw new UsageException($"--mode: '{mode}' is not musc, fslc, stream or all.");
                    }
                    break;
                case "--model": o = o with { Model = Next() }; break;
                case "--taps": o = o with { Taps = Next().Split(',', StringSplitOptions.RemoveEmptyEntries) }; break;
                case "--degrees":
                    string d = Next();
                    var degrees = new List<int>();
                    foreach (string part in d.Split(','))
                    {
                        if (!int.TryParse(part, out int v) || v < 1 || v % 2 == 0) throw new UsageException($"--degrees: '{part}' is not an odd integer >= 1.");
                        degrees.Add(v);
                    }
                    o = o with { Degrees = [.. degrees] };
                    break;
                case "--image-size": o = o with { ImageSize = Int(32) }; break;
                case "--roi":
                    string roi = Next();
                    var parts = roi.Split(',');
                    var v4 = new int[4];
                    if (parts.Length != 4 || !parts.Select((x, k) => int.TryParse(x, NumberStyles.Integer, CultureInfo.InvariantCulture, out v4[k])).All(ok => ok)
                        || v4[0] < 0 || v4[1] < 0 || v4[2] < 1 || v4[3] < 1)
                    {
                        throw new UsageException($"--roi: '{roi}' is not x,y,w,h in pixels (x, y >= 0; w, h >= 1).");
                    }
                    o = o with { Roi = new PixelRect(v4[0], v4[1], v4[2], v4[3]) };
                    break;
                case "--tiles":
                    string tiles = Next();
                    var cr = tiles.Split('x', 'X');
                    if (cr.Length != 2 || !int.TryParse(cr[0], out int cols) || !int.TryParse(cr[1], out int rows) || cols < 1 || rows < 1 || cols * rows > 64)
                    {
                        throw new UsageException($"--tiles: '{tiles}' is not CxR with C, R >= 1 and at most 64 tiles (e.g. 3x2).");
                    }
                    o = o with { TileCols = cols, TileRows = rows };
                    break;
                case "--tile-overlap":
                    double overlap = Dbl(0);
                    if (overlap >= 1) throw new UsageException($"--tile-overlap: {overlap.ToString(CultureInfo.InvariantCulture)} is a share of a tile: at least 0 and below 1.");
                    o = o with { TileOverlap = overlap };
                    break;
                case "--tile-refs":
                    string refs = Next();
                    if (refs is not ("position" or "pooled")) throw new UsageException($"--tile-refs: '{refs}' is not position or pooled.");
                    o = o with { TileRefs = refs };
                    break;
                case "--batch": o = o with { Engine = o.Engine with { Batch = Int(2) } }; break;
                case "--seed": o = o with { Seed = Int(0) }; break;
                case "--limit": o = o with { Limit = Int(0) }; break;
                case "--refs": o = o with { Refs = Int(0) }; break;
                case "--score-dims": o = o with { Engine = o.Engine with { ScoreDims = Int(0) } }; break;
                case "--top-n": o = o with { Engine = o.Engine with { TopN = Int(1) } }; break;
                case "--infer-batch": o = o with { InferBatch = Int(1) }; break;
                case "--scoring":
                    string scoring = Next();
                    if (!ScoringPath.Settings.Contains(scoring)) throw new UsageException($"--scoring: '{scoring}' is not one of {string.Join(", ", ScoringPath.Settings)}.");
                    o = o with { Scoring = scoring };
                    break;
                case "--export-graphs": o = o with { ExportGraphs = Next() }; break;
                case "--out": o = o with { Out = Next() }; break;
                case "--quiet": o = o with { Quiet = true }; break;
                case "--dump": o = o with { Dump = true }; break;
                case "--quarantine-z": o = o with { Engine = o.Engine with { QuarantineZ = Dbl(0) } }; break;
                case "--reservoir-frames": o = o with { Engine = o.Engine with { ReservoirFrames = Int(2) } }; break;
                case "--reservoir-keep": o = o with { Engine = o.Engine with { ReservoirKeep = Dbl(0.001) } }; break;
                case "--reservoir-window": o = o with { Engine = o.Engine with { ReservoirWindow = Int(-1) } }; break;
                case "-h" or "--help": throw new UsageException(null);
                default:
                    if (a.StartsWith('-')) throw new UsageException($"unknown option '{a}'.");
                    if (category is not null) throw new UsageException($"only one category directory is taken ('{category}' and '{a}').");
                    category = a;
                    break;
            }
        }
        if (category is null) throw new UsageException("a category directory is required.");
        if (o.Dump && o.Tiled) throw new UsageException("--dump writes the square patch grids of a whole-image run; it does not take --roi or --tiles.");
        return o with { Category = category };
    }
}

internal sealed class UsageException(string? message) : Exception(message);
