using System.Globalization;

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
    public int Batch { get; init; } = 64;
    public int Seed { get; init; }
    public int Limit { get; init; }
    public int Refs { get; init; }
    public string Out { get; init; } = "eval-out";
    public double CoresetMax { get; init; } = 4.0;
    public int ProjectionDims { get; init; } = 24;
    public double InitFraction { get; init; } = 0.25;
    public int TopN { get; init; } = 10;
    public int InferBatch { get; init; } = 8;
    public int ScoreDims { get; init; } = 128;
    public double FilterZ { get; init; } = 3.0;
    public float MapSigma { get; init; }
    public bool NoLift { get; init; }
    public int FilterRefs { get; init; } = 32;
    public double UpperSpread { get; init; } = 3.0;
    public bool NoWarmupAnchors { get; init; }
    public double FilterMax { get; init; } = 0.15;
    public double ExpandFraction { get; init; } = 1.0;
    public bool Quiet { get; init; }
    public bool Dump { get; init; }
    public double UpdateExpand { get; init; } = 0.25;
    public double QuarantineZ { get; init; } = 2.5;
    public double CandidateQuantile { get; init; } = 0.9;
    public double AdjustedMemory { get; init; } = 1.0;
    public double ReestimateFraction { get; init; } = 1.0;
    public bool ColdStart { get; init; }
    public int WarmupBatches { get; init; } = 1;
    public double ColdStartQuantile { get; init; } = 0.7;
    public int ReservoirFrames { get; init; } = 64;
    public double ReservoirKeep { get; init; } = 0.0625;
    public double ReservoirWeight { get; init; } = 1.0;
    public int ReservoirStride { get; init; } = 1;

    public const string Usage = """
        usage: edgeinspector-eval <category-dir> [options]

        Runs the anomaly engine over the test images of an MVTec-layout category (test/good,
        test/<defect>, ground_truth/<defect>/<name>_mask.png) in a seeded line order and reports
        accuracy, time per frame and peak memory per mode.

          --mode musc|fslc|stream|all   scorers to run (default stream; 'all' runs the three)
          --model PATH                  backbone ONNX file (default: resnet50v2_features.onnx, looked up
                                        in ./models and ../shared/models)
          --taps a,b                    named outputs used as taps (default stage2,stage3)
          --degrees 1,3,5               local aggregation degrees (default 1,3,5)
          --image-size N                square input size in pixels (default 224)
          --batch N                     frames per MuSc/FSLC batch and per streaming update (default 64)
          --seed N                      seed of the line order shuffle (default 0)
          --limit N                     use only the first N frames of the line order (0 = all)
          --refs N                      seed the streaming coreset with N images of train/good (few-shot)
          --coreset-max X               streaming coreset bound, in multiples of patches per frame (default 4)
          --proj-dims N                 projected dimensions per view for k-center selection (default 24)
          --init-fraction X             FSLC initial coreset fraction rho0 (default 0.25)
          --score-dims N                FSLC modes: project each view to N dims before scoring (default 128; 0 = full width)
          --filter-z X                  FSLC filter: robust z above which an element is removed (default 3)
          --filter-max X                FSLC filter: largest fraction removed in one pass (default 0.15)
          --expand-fraction X           FSLC expansion size relative to the initial coreset (default 1.0)
          --map-sigma X                 FSLC modes: Gaussian smoothing of the map, in patches (default 0)
          --no-lift                     FSLC modes: plain nearest distance, no score adjusting at scoring time
          --filter-refs N               FSLC: reference frames of the adjusted score, Jref (default 32)
          --upper-spread X              stream: admission band ends at p99 + X·(p99 − p50) (default 3)
          --no-warmup-anchors           stream: warm-up elements may be re-thinned like adaptive ones
          --update-expand X             stream: elements an update may add, in patches per frame (default 0.25; 0 = frozen coreset)
          --quarantine-z X              stream: frames calibrated above this give no candidates (default 2.5)
          --adjusted-memory X           stream: share of an element's adjusted score kept at each update, the rest re-estimated (default 1 = never)
          --reestimate-fraction X       stream: share of the elements re-estimated per update, a rotating slice (default 1: all)
          --warmup-batches K            stream: the warm-up coreset is rebuilt over the first K batches (default 1)
          --cold-start                  stream: MuSc scores the warm-up batch; only its confident-normal patches become elements
          --cold-start-quantile X       stream: MuSc patch-score quantile of "confident normal" (default 0.7)
          --reservoir-frames R          stream: score patches by the interval average over a reservoir of R
                                        accepted frames (default 64; 0 = by the coreset alone)
          --reservoir-keep X            stream: share of each reservoir frame's patches kept, k-center (default 0.0625)
          --reservoir-weight X          stream: weight of the reservoir score, the coreset's has the rest (default 1;
                                        at 1 no coreset is built: the coreset knobs above, updates and warm-up
                                        rebuilds included, apply below 1 or at --reservoir-frames 0)
          --reservoir-stride N          stream: every N-th accepted frame enters the reservoir (default 1)
          --candidate-quantile X        stream: patch-score quantile where the admission band starts (default 0.9)
          --top-n N                     patches averaged into the image score (default 10)
          --infer-batch N               images per backbone run (default 8)
          --out DIR                     output folder (default eval-out)
          --quiet                       no progress bar
          --dump                        also write every frame's patch grid and image score
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
                case "--batch": o = o with { Batch = Int(2) }; break;
                case "--seed": o = o with { Seed = Int(0) }; break;
                case "--limit": o = o with { Limit = Int(0) }; break;
                case "--refs": o = o with { Refs = Int(0) }; break;
                case "--coreset-max": o = o with { CoresetMax = Dbl(0.01) }; break;
                case "--proj-dims": o = o with { ProjectionDims = Int(1) }; break;
                case "--init-fraction": o = o with { InitFraction = Dbl(0.001) }; break;
                case "--score-dims": o = o with { ScoreDims = Int(0) }; break;
                case "--filter-z": o = o with { FilterZ = Dbl(0) }; break;
                case "--filter-max": o = o with { FilterMax = Dbl(0) }; break;
                case "--expand-fraction": o = o with { ExpandFraction = Dbl(0) }; break;
                case "--map-sigma": o = o with { MapSigma = (float)Dbl(0) }; break;
                case "--no-lift": o = o with { NoLift = true }; break;
                case "--filter-refs": o = o with { FilterRefs = Int(1) }; break;
                case "--upper-spread": o = o with { UpperSpread = Dbl(0) }; break;
                case "--no-warmup-anchors": o = o with { NoWarmupAnchors = true }; break;
                case "--top-n": o = o with { TopN = Int(1) }; break;
                case "--infer-batch": o = o with { InferBatch = Int(1) }; break;
                case "--out": o = o with { Out = Next() }; break;
                case "--quiet": o = o with { Quiet = true }; break;
                case "--dump": o = o with { Dump = true }; break;
                case "--update-expand": o = o with { UpdateExpand = Dbl(0) }; break;
                case "--quarantine-z": o = o with { QuarantineZ = Dbl(0) }; break;
                case "--adjusted-memory": o = o with { AdjustedMemory = Dbl(0) }; break;
                case "--reestimate-fraction": o = o with { ReestimateFraction = Dbl(0.001) }; break;
                case "--cold-start": o = o with { ColdStart = true }; break;
                case "--warmup-batches": o = o with { WarmupBatches = Int(1) }; break;
                case "--cold-start-quantile": o = o with { ColdStartQuantile = Dbl(0.01) }; break;
                case "--reservoir-frames": o = o with { ReservoirFrames = Int(0) }; break;
                case "--reservoir-keep": o = o with { ReservoirKeep = Dbl(0.001) }; break;
                case "--reservoir-weight": o = o with { ReservoirWeight = Dbl(0) }; break;
                case "--reservoir-stride": o = o with { ReservoirStride = Int(1) }; break;
                case "--candidate-quantile": o = o with { CandidateQuantile = Dbl(0) }; break;
                case "-h" or "--help": throw new UsageException(null);
                default:
                    if (a.StartsWith('-')) throw new UsageException($"unknown option '{a}'.");
                    if (category is not null) throw new UsageException($"only one category directory is taken ('{category}' and '{a}').");
                    category = a;
                    break;
            }
        }
        if (category is null) throw new UsageException("a category directory is required.");
        return o with { Category = category };
    }
}

internal sealed class UsageException(string? message) : Exception(message);
