using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Verdicts;

namespace EdgeInspector.Configuration;

// Plain settings read from config/edgeinspector.yaml. Defaults here are the defaults a technician gets
// for a field left out; the YAML file documents each one. Collections are arrays so that two readings of
// the same file compare equal section by section (hot reload applies only what changed).

/// <summary>The whole file.</summary>
public sealed record InspectorSettings
{
    /// <summary>Line name: the second level of every MQTT topic.</summary>
    public string Line { get; init; } = "line1";
    /// <summary>The top-level sections the file itself holds (the rest took their defaults), in file order.</summary>
    public string[] Sections { get; init; } = [];
    /// <summary>Cameras, each run as its own pipeline.</summary>
    public CameraSettings[] Cameras { get; init; } = [];
    /// <summary>The backbone.</summary>
    public ModelSettings Model { get; init; } = new();
    /// <summary>The anomaly engine and pipeline queues.</summary>
    public EngineSettings Engine { get; init; } = new();
    /// <summary>How scores become verdicts.</summary>
    public VerdictSettings Verdict { get; init; } = new();
    /// <summary>Heatmap publishing.</summary>
    public HeatmapSettings Heatmap { get; init; } = new();
    /// <summary>Broker connection.</summary>
    public MqttSettings Mqtt { get; init; } = new();
    /// <summary>Log files.</summary>
    public LoggingSettings Logging { get; init; } = new();
    /// <summary>Image archive for audits.</summary>
    public ArchiveSettings Archive { get; init; } = new();
    /// <summary>Health, metrics and the live view over HTTP.</summary>
    public HttpSettings Http { get; init; } = new();
    /// <summary>Drift alarms: the reject rate and the accepted parts' scores against the learned baseline.</summary>
    public DriftOptions Drift { get; init; } = new();
    /// <summary>Named recipes (product variants) a command can switch to.</summary>
    public RecipeSettings[] Recipes { get; init; } = [];

    /// <summary>The recipe called <paramref name="name"/>, or null.</summary>
    public RecipeSettings? Recipe(string name) => Array.Find(Recipes, r => r.Name == name);

    /// <summary>Known-good images for <paramref name="recipe"/>: its own folder, else engine.known_good_folder (empty: none).</summary>
    public string KnownGoodFolder(string recipe) => Recipe(recipe)?.KnownGoodFolder is { Length: > 0 } own ? own : Engine.KnownGoodFolder;

    /// <summary>Whether a none | fails | all setting (heatmap.publish, archive.save) selects a part with this verdict.</summary>
    public static bool Selects(string mode, bool flagged) => mode == "all" || (mode == "fails" && flagged);
}

/// <summary>One camera.</summary>
public sealed record CameraSettings
{
    /// <summary>Name: the third level of the MQTT topics.</summary>
    public string Name { get; init; } = "";
    /// <summary>replay | gige | video.</summary>
    public string Source { get; init; } = "replay";
    /// <summary>Replay settings (source: replay).</summary>
    public ReplaySettings Replay { get; init; } = new();
    /// <summary>GigE Vision settings (source: gige).</summary>
    public GigeSettings Gige { get; init; } = new();
    /// <summary>USB / file / RTSP settings (source: video).</summary>
    public VideoSettings Video { get; init; } = new();
    /// <summary>Recipe active at start (empty: none).</summary>
    public string Recipe { get; init; } = "";
    /// <summary>The region of interest in sensor pixels, cut out of every frame before anything else; null: the whole frame.</summary>
    public EdgeInspector.Core.Tiling.PixelRect? Roi { get; init; }

    /// <summary>Whether the PLC triggers this camera's frames (its trigger topic).</summary>
    public bool PlcTriggered => Source switch { "replay" => Replay.Trigger == "plc", "gige" => Gige.Trigger == "plc", _ => false };
}

/// <summary>Folder replay: the demo's and the tests' camera.</summary>
public sealed record ReplaySettings
{
    /// <summary>Folder of images (searched recursively, in name order).</summary>
    public string Folder { get; init; } = "";
    /// <summary>Frames per second; 0 replays as fast as the pipeline takes them.</summary>
    public double Fps { get; init; } = 5;
    /// <summary>Start over at the end.</summary>
    public bool Loop { get; init; } = true;
    /// <summary>name | shuffle (seeded: the same order every run).</summary>
    public string Order { get; init; } = "name";
    /// <summary>Seed of the shuffle.</summary>
    public int Seed { get; init; }
    /// <summary>none | plc: the next image on each message on the trigger topic (fps is then not used).</summary>
    public string Trigger { get; init; } = "none";
}

/// <summary>A GigE Vision camera through Aravis.</summary>
public sealed record GigeSettings
{
    /// <summary>Aravis device id, serial number or IP address (an address opens it without broadcast discovery).</summary>
    public string Camera { get; init; } = "";
    /// <summary>Exposure time in microseconds; null leaves the camera's value.</summary>
    public double? ExposureUs { get; init; }
    /// <summary>Gain in dB; null leaves the camera's value.</summary>
    public double? GainDb { get; init; }
    /// <summary>GenICam pixel format name; empty leaves the camera's value.</summary>
    public string PixelFormat { get; init; } = "";
    /// <summary>free_run | software | line | plc (a software trigger for each message on the trigger topic).</summary>
    public string Trigger { get; init; } = "free_run";
    /// <summary>Hardware trigger input (trigger: line).</summary>
    public string TriggerLine { get; init; } = "Line1";
    /// <summary>Frame rate in free run, or software trigger rate.</summary>
    public double FrameRate { get; init; } = 5;
    /// <summary>How long to wait for a frame before counting a timeout.</summary>
    public int TimeoutMs { get; init; } = 2000;
    /// <summary>Longest wait between reconnection attempts.</summary>
    public double ReconnectMaxS { get; init; } = 10;
}

/// <summary>A camera OpenCV's VideoCapture opens: USB (V4L2) index or device, a video file, an RTSP URL.</summary>
public sealed record VideoSettings
{
    /// <summary>"0", "/dev/video0", a file path or rtsp://…</summary>
    public string Uri { get; init; } = "";
    /// <summary>Longest wait between reconnection attempts.</summary>
    public double ReconnectMaxS { get; init; } = 10;
}

/// <summary>The backbone (see models/README.md).</summary>
public sealed record ModelSettings
{
    /// <summary>ONNX file; relative paths are relative to the config file.</summary>
    public string Path { get; init; } = "";
    /// <summary>Input width.</summary>
    public int InputWidth { get; init; } = 224;
    /// <summary>Input height.</summary>
    public int InputHeight { get; init; } = 224;
    /// <summary>rgb | bgr.</summary>
    public string ChannelOrder { get; init; } = "rgb";
    /// <summary>Per-channel mean.</summary>
    public double[] Mean { get; init; } = [0.485, 0.456, 0.406];
    /// <summary>Per-channel std.</summary>
    public double[] Std { get; init; } = [0.229, 0.224, 0.225];
    /// <summary>Named outputs used as feature taps.</summary>
    public string[] Taps { get; init; } = ["stage2", "stage3"];
    /// <summary>Execution providers in order of preference.</summary>
    public string[] Providers { get; init; } = ["tensorrt", "cuda", "cpu"];
    /// <summary>TensorRT FP16.</summary>
    public bool TensorRtFp16 { get; init; } = true;
    /// <summary>TensorRT engine cache directory.</summary>
    public string TensorRtCache { get; init; } = "trt-cache";
    /// <summary>Intra-op threads (0: ONNX Runtime's default).</summary>
    public int Threads { get; init; }
}

/// <summary>The engine and the queues in front of it.</summary>
public sealed record EngineSettings
{
    /// <summary>The engine's own options (warm-up batch, reservoir, scoring width); defaults are <see cref="EngineOptions.Default"/>.</summary>
    public EngineOptions Options { get; init; } = EngineOptions.Default;
    /// <summary>While the engine learns, its state is saved beside the spool at least this often (seconds), and at stop.</summary>
    public int SnapshotIntervalS { get; init; } = 60;
    /// <summary>Folder of known-good images that seed the reservoir at start (few-shot); empty: zero-shot.</summary>
    public string KnownGoodFolder { get; init; } = "";
    /// <summary>Frames waiting for the backbone, at most.</summary>
    public int QueueCapacity { get; init; } = 16;
    /// <summary>Frames per backbone call, at most.</summary>
    public int InferenceBatch { get; init; } = 4;
    /// <summary>drop_oldest | drop_newest: which frame is answered "dropped" when the queue is full.</summary>
    public string DropPolicy { get; init; } = "drop_oldest";
    /// <summary>How each frame's region is cut into tiles (one tile: the whole region in one model input).</summary>
    public TileSettings Tiles { get; init; } = new();
    /// <summary>The most memory (MB) one camera's engine may hold of what it learns: its warm-up batch and reservoir over every tile position. Checked against the model's layout at start and on every edit.</summary>
    public int MemoryMb { get; init; } = 2048;
    /// <summary><see cref="MemoryMb"/> in bytes.</summary>
    public long MemoryBytes => MemoryMb * 1024L * 1024L;
    /// <summary>auto | managed | onnx: where the views and the reservoir's scoring run. onnx: both as ONNX graphs on the backbone's provider; managed: both as managed code; auto: on a GPU both graphs, on the CPU the views graph and the managed scoring (the faster measured).</summary>
    public string Scoring { get; init; } = ScoringPath.Default;
}

/// <summary>Tiling: the region cut into Cols × Rows tiles, each through the backbone at the model's input size.</summary>
public sealed record TileSettings
{
    public int Cols { get; init; } = 1;
    public int Rows { get; init; } = 1;
    /// <summary>Share of a tile that neighbours overlap (0 to 0.9). 0: an overlap costs every tile resolution (decision 0008).</summary>
    public double Overlap { get; init; }
    /// <summary>position (tile (i,j) against tile (i,j) of earlier parts) | pooled (every tile against every other part's tiles).</summary>
    public string Refs { get; init; } = "position";

    public int Count => Cols * Rows;

    /// <summary>True for pooled references.</summary>
    public bool Pooled => Refs == "pooled";

    /// <summary>How the tiles are cut, as a snapshot records it ("" for one tile).</summary>
    public string Describe() => Count == 1 ? "" : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Cols}x{Rows} tiles, overlap {Overlap}, {Refs}");
}

/// <summary>How scores become verdicts.</summary>
public sealed record VerdictSettings
{
    /// <summary>Calibrated score (robust z) at and above which a part fails.</summary>
    public double Threshold { get; init; } = 3.0;
    /// <summary>Half-width of the unsure band around the threshold.</summary>
    public double UnsureBand { get; init; } = 0.5;
    /// <summary>reject | accept.</summary>
    public string Unsure { get; init; } = "reject";
    /// <summary>reject | accept: while the engine warms up.</summary>
    public string WarmingUp { get; init; } = "accept";
    /// <summary>Deadline from capture to verdict.</summary>
    public int DeadlineMs { get; init; } = 2000;
    /// <summary>reject | accept: fail-safe when the deadline passes.</summary>
    public string Timeout { get; init; } = "reject";
    /// <summary>reject | accept: for frames dropped under overload.</summary>
    public string Dropped { get; init; } = "reject";
}

/// <summary>Heatmap publishing.</summary>
public sealed record HeatmapSettings
{
    /// <summary>none | fails | all ("fails" includes unsure).</summary>
    public string Publish { get; init; } = "fails";
    /// <summary>JPEG quality.</summary>
    public int JpegQuality { get; init; } = 80;
}

/// <summary>TLS to the broker.</summary>
public sealed record TlsSettings
{
    /// <summary>Use TLS.</summary>
    public bool Enabled { get; init; }
    /// <summary>CA certificate (PEM) that signed the broker's certificate; empty: the system store.</summary>
    public string CaFile { get; init; } = "";
    /// <summary>Accept any certificate (commissioning only).</summary>
    public bool AllowUntrusted { get; init; }
}

/// <summary>Broker connection and delivery.</summary>
public sealed record MqttSettings
{
    /// <summary>Broker host; empty starts an embedded broker on 127.0.0.1.</summary>
    public string Host { get; init; } = "";
    /// <summary>Broker port (also the embedded broker's).</summary>
    public int Port { get; init; } = 1883;
    /// <summary>The one address the embedded broker listens on (no mqtt.host); beyond loopback it requires username and password.</summary>
    public string Bind { get; init; } = "127.0.0.1";
    /// <summary>First topic level.</summary>
    public string Prefix { get; init; } = "edgeinspector";
    /// <summary>Client id prefix (the camera name is appended).</summary>
    public string ClientId { get; init; } = "edgeinspector";
    /// <summary>User name; empty: anonymous.</summary>
    public string Username { get; init; } = "";
    /// <summary>Environment variable holding the password.</summary>
    public string PasswordEnv { get; init; } = "";
    /// <summary>File holding the password (first line).</summary>
    public string PasswordFile { get; init; } = "";
    /// <summary>TLS.</summary>
    public TlsSettings Tls { get; init; } = new();
    /// <summary>Spool directory for verdicts the broker could not take.</summary>
    public string SpoolDir { get; init; } = "spool";
    /// <summary>Spooled messages kept at most, per camera; the oldest go first (counted).</summary>
    public int SpoolMaxMessages { get; init; } = 100_000;
    /// <summary>Free disk space the spool leaves (MB): below it the spool stops growing, the oldest message making way for each new one (counted).</summary>
    public int SpoolMinFreeMb { get; init; } = 64;
    /// <summary>Status publishing period.</summary>
    public double StatusIntervalS { get; init; } = 5;
}

/// <summary>Log files.</summary>
public sealed record LoggingSettings
{
    /// <summary>Directory of the rolling log files.</summary>
    public string Dir { get; init; } = "logs";
    /// <summary>verbose | debug | information | warning | error.</summary>
    public string Level { get; init; } = "information";
    /// <summary>Size at which a file rolls over.</summary>
    public int FileSizeMb { get; init; } = 20;
    /// <summary>Files kept.</summary>
    public int RetainedFiles { get; init; } = 10;
}

/// <summary>Images kept for audits.</summary>
public sealed record ArchiveSettings
{
    /// <summary>Directory.</summary>
    public string Dir { get; init; } = "archive";
    /// <summary>none | fails | all.</summary>
    public string Save { get; init; } = "fails";
    /// <summary>Records (frame, heatmap, record) kept at most per camera (oldest deleted first).</summary>
    public int MaxFiles { get; init; } = 1000;
    /// <summary>Bytes kept at most per camera (oldest deleted first).</summary>
    public long MaxBytes { get; init; } = 2_000_000_000;
    /// <summary>Free disk space (MB) below which nothing more is archived (the oldest records make way first).</summary>
    public int MinFreeMb { get; init; } = 512;
}

/// <summary>Kestrel: /healthz, /readyz, /metrics and the live view.</summary>
public sealed record HttpSettings
{
    /// <summary>address:port; empty turns HTTP off. Beyond loopback a token is required.</summary>
    public string Listen { get; init; } = "127.0.0.1:8080";
    /// <summary>Environment variable holding the bearer token.</summary>
    public string TokenEnv { get; init; } = "";
    /// <summary>File holding the bearer token (first line).</summary>
    public string TokenFile { get; init; } = "";
}

/// <summary>A product variant: its own threshold and known-good images.</summary>
public sealed record RecipeSettings
{
    /// <summary>Name used by the switch_recipe command.</summary>
    public string Name { get; init; } = "";
    /// <summary>Threshold override; null keeps verdict.threshold.</summary>
    public double? Threshold { get; init; }
    /// <summary>Known-good folder override; empty keeps engine.known_good_folder.</summary>
    public string KnownGoodFolder { get; init; } = "";
}
