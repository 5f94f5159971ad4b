using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;
using EdgeInspector.Core.Verdicts;
using YamlDotNet.RepresentationModel;

namespace EdgeInspector.Configuration;

/// <summary>
/// Reads and validates the configuration file. Every problem is collected (file, line, column, the field's
/// path and what is allowed) and thrown together, so a technician fixes them in one edit, not one per
/// restart. Relative paths are resolved against the file's folder. Secrets never need to be in the file.
/// </summary>
public static partial class ConfigLoader
{
    /// <summary>Reads <paramref name="path"/>; throws <see cref="ConfigException"/> with every problem found.</summary>
    public static InspectorSettings Load(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            string named = System.IO.Path.Combine(full, "edgeinspector.yaml");
            throw new ConfigException([new ConfigError(path, 0, 0, "(file)", $"a folder, not a configuration file; give the file itself{(File.Exists(named) ? $" ({named} is there)" : "")}")]);
        }
        if (!File.Exists(full)) throw new ConfigException([new ConfigError(path, 0, 0, "(file)", $"configuration file not found (looked for {full})")]);
        string text;
        long size = new FileInfo(full).Length;
        if (size > MaxChars * 4L) throw new ConfigException([new ConfigError(path, 0, 0, "(file)", $"{size:N0} bytes; a configuration holds at most {MaxChars:N0} characters (is this the right file?)")]);
        try { text = File.ReadAllText(full); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException([new ConfigError(path, 0, 0, "(file)", "cannot be read: " + e.Message)]);
        }
        return Parse(text, path, System.IO.Path.GetDirectoryName(full)!);
    }

    /// <summary>Parses YAML text; <paramref name="file"/> names it in errors, <paramref name="baseDir"/> resolves relative paths.</summary>
    public static InspectorSettings Parse(string text, string file, string baseDir)
    {
        var root = ConfigText.Load(text, file);
        var errors = ConfigText.Mangled(root, file);
        var r = new YamlSection(errors, file, root, "");
        var settings = Read(r, baseDir);
        if (errors.Count > 0) throw new ConfigException(errors);
        var sections = root is YamlMappingNode map ? map.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value ?? "").ToArray() : [];
        return settings with { Sections = sections };
    }

    /// <summary>
    /// Every field the validator reads, as it reads them: the reading below run over an empty document,
    /// with each getter recording its field (the basis of <see cref="ConfigSchema"/>).
    /// </summary>
    internal static SchemaNode Describe()
    {
        var root = new SchemaNode();
        Read(new YamlSection([], "(schema)", null, "", schema: root), Path.GetTempPath());
        return root;
    }

    /// <summary>The most characters a configuration file may hold: the shipped one is about 8,000.</summary>
    public const int MaxChars = 1_000_000;

    /// <summary>The deepest nesting of lists and mappings read: the configuration needs 4.</summary>
    public const int MaxDepth = 32;

    /// <summary>Fields of earlier versions, named so that an old file's error says what to do.</summary>
    private static readonly Dictionary<string, string> RemovedEngineFields = new()
    {
        ["warmup_batches"] = "the engine keeps no coreset to rebuild; the reservoir learns from every good part",
        ["coreset_max_per_patches"] = "the engine keeps no coreset; its memory is reservoir_frames x reservoir_keep",
    };

    private static string Resolve(string baseDir, string p) => p.Length == 0 ? p : System.IO.Path.GetFullPath(System.IO.Path.Combine(baseDir, Environment.ExpandEnvironmentVariables(p)));

    private static InspectorSettings Read(YamlSection r, string baseDir)
    {
        string line = r.Str("line", "line1");
        CheckTopicLevel(r, "line", line);

        var cameras = new List<CameraSettings>();
        var names = new HashSet<string>();
        var recipesSec = r.Named("recipes");
        var recipes = new List<RecipeSettings>();
        foreach (var (name, s) in recipesSec)
        {
            recipes.Add(new RecipeSettings
            {
                Name = name,
                Threshold = s.OptNum("threshold", 0, 1000, CalibratedScore),
                KnownGoodFolder = Folder(s, "known_good_folder", baseDir, mustExist: true),
            });
            s.RejectUnknown();
        }

        var cameraList = r.List("cameras");
        var cameraSections = new List<YamlSection>();
        if (cameraList.Count == 0) r.Error(null, "cameras", "at least one camera is required");
        foreach (var c in cameraList)
        {
            string name = c.Str("name", "");
            if (name.Length == 0) c.Error(null, c.Path + ".name", "every camera needs a name (used in MQTT topics)");
            else if (!names.Add(name)) c.Error(null, c.Path + ".name", $"camera name '{name}' is used twice");
            else CheckTopicLevel(c, "name", name);
            string source = c.Str("source", "replay", "replay", "gige", "video");
            var rp = c.Child("replay");
            var replay = new ReplaySettings
            {
                Folder = Folder(rp, "folder", baseDir, mustExist: source == "replay"),
                Fps = rp.Num("fps", 5, 0, 1000),
                Loop = rp.Bool("loop", true),
                Order = rp.Str("order", "name", "name", "shuffle"),
                Seed = rp.Int("seed", 0, 0, int.MaxValue),
                Trigger = rp.Str("trigger", "none", "none", "plc"),
            };
            rp.RejectUnknown();
            if (source == "replay" && replay.Folder.Length == 0) c.Error(null, c.Path + ".replay.folder", "source 'replay' needs a folder of images");
            var g = c.Child("gige");
            var gige = new GigeSettings
            {
                Camera = g.Str("camera", ""),
                ExposureUs = g.OptNum("exposure_us", 1, 10_000_000),
                GainDb = g.OptNum("gain_db", 0, 100),
                PixelFormat = g.Str("pixel_format", ""),
                Trigger = g.Str("trigger", "free_run", "free_run", "software", "line", "plc"),
                TriggerLine = g.Str("trigger_line", "Line1"),
                FrameRate = g.Num("frame_rate", 5, 0.01, 1000),
                TimeoutMs = g.Int("timeout_ms", 2000, 10, 600_000),
                ReconnectMaxS = g.Num("reconnect_max_s", 10, 0.1, 3600),
            };
            g.RejectUnknown();
            if (source == "gige" && gige.Camera.Length == 0) c.Error(null, c.Path + ".gige.camera", "source 'gige' needs a camera: Aravis id, serial number or IP address");
            var v = c.Child("video");
            var video = new VideoSettings { Uri = v.Str("uri", ""), ReconnectMaxS = v.Num("reconnect_max_s", 10, 0.1, 3600) };
            v.RejectUnknown();
            if (source == "video" && video.Uri.Length == 0) c.Error(null, c.Path + ".video.uri", "source 'video' needs a uri: a USB index (0), a device (/dev/video0), a file or rtsp://…");
            var roi = Roi(c);
            string recipe = c.Str("recipe", "");
            if (recipe.Length > 0 && !recipes.Any(x => x.Name == recipe)) c.Error(null, c.Path + ".recipe", $"recipe '{recipe}' is not defined under recipes: (defined: {string.Join(", ", recipes.Select(x => x.Name))})");
            c.RejectUnknown();
            cameras.Add(new CameraSettings { Name = name, Source = source, Replay = replay, Gige = gige, Video = video, Recipe = recipe, Roi = roi });
            cameraSections.Add(c);
        }

        var m = r.Child("model");
        var model = new ModelSettings
        {
            Path = FilePath(m, "path", baseDir),
            InputWidth = m.Int("input_width", 224, 32, 4096),
            InputHeight = m.Int("input_height", 224, 32, 4096),
            ChannelOrder = m.Str("channel_order", "rgb", "rgb", "bgr"),
            Mean = [.. m.NumList("mean", [0.485, 0.456, 0.406], 3)],
            Std = [.. m.NumList("std", [0.229, 0.224, 0.225], 3)],
            Taps = [.. m.StrList("taps", ["stage2", "stage3"])],
            Providers = [.. m.StrList("providers", ["tensorrt", "cuda", "cpu"])],
            TensorRtFp16 = m.Bool("tensorrt_fp16", true),
            TensorRtCache = PathField(m, "tensorrt_cache", "trt-cache", baseDir),
            Threads = m.Int("threads", 0, 0, 256),
        };
        if (model.Path.Length == 0) m.Error(null, "model.path", "the backbone's ONNX file is required (see models/README.md)");
        // A region smaller than the model's input would be enlarged: it shows the backbone nothing more.
        for (int i = 0; i < cameras.Count; i++)
        {
            if (cameras[i].Roi is { } roi && (roi.Width < model.InputWidth || roi.Height < model.InputHeight))
            {
                cameraSections[i].Error(null, cameraSections[i].Path + ".roi", $"the region {roi} is {roi.Width}×{roi.Height} pixels, smaller than the model's {model.InputWidth}×{model.InputHeight} input; make it at least that large, or leave roi out to use the whole frame");
            }
        }
        if (model.Taps.Length == 0) m.Error(null, "model.taps", "at least one tap (a named output of the model) is required");
        if (model.Std.Any(s => s <= 0)) m.Error(null, "model.std", "every std must be above 0");
        foreach (string p in model.Providers)
        {
            if (p is not ("tensorrt" or "cuda" or "cpu")) m.Error(null, "model.providers", $"'{p}' is not allowed; expected tensorrt, cuda or cpu");
        }
        m.RejectUnknown();

        var e = r.Child("engine");
        var defaults = EngineOptions.Default;
        var engine = new EngineSettings
        {
            Options = defaults with
            {
                Batch = e.Int("batch", defaults.Batch, 4, 4096),
                ReservoirFrames = e.Int("reservoir_frames", defaults.ReservoirFrames, 2, 1024),
                ReservoirKeep = e.Num("reservoir_keep", defaults.ReservoirKeep, 0.01, 1),
                ReservoirWindow = e.Int("reservoir_window", defaults.ReservoirWindow, -1, 7),
                ScoreDims = e.Int("score_dims", defaults.ScoreDims, 0, 8192),
            },
            SnapshotIntervalS = e.Int("snapshot_interval_s", 60, 1, 60),
            KnownGoodFolder = Folder(e, "known_good_folder", baseDir, mustExist: true),
            QueueCapacity = e.Int("queue_capacity", 16, 1, 100_000),
            InferenceBatch = e.Int("inference_batch", 4, 1, 256),
            DropPolicy = e.Str("drop_policy", "drop_oldest", "drop_oldest", "drop_newest"),
            Tiles = Tiles(e.Child("tiles")),
            MemoryMb = e.Int("memory_mb", 2048, 16, 1_048_576),
            Scoring = e.Str("scoring", ScoringPath.Default, ScoringPath.Settings),
        };
        e.RejectUnknown(RemovedEngineFields);
        // A tile below the model's input is enlarged: it shows the backbone nothing more. Known here when the
        // camera has a region; otherwise each frame is checked as it comes.
        for (int i = 0; i < cameras.Count; i++)
        {
            if (engine.Tiles.Count == 1 || cameras[i].Roi is not { } roi || roi.Width < model.InputWidth || roi.Height < model.InputHeight) continue;
            var grid = TileGrid.Create(roi.Width, roi.Height, engine.Tiles.Cols, engine.Tiles.Rows, engine.Tiles.Overlap);
            if (grid.TileWidth < model.InputWidth || grid.TileHeight < model.InputHeight)
            {
                e.Error(null, "engine.tiles", $"{engine.Tiles.Cols}x{engine.Tiles.Rows} tiles of camera '{cameras[i].Name}''s {roi.Width}×{roi.Height} region are {grid.TileWidth}×{grid.TileHeight} pixels, smaller than the model's {model.InputWidth}×{model.InputHeight} input; use fewer tiles or a larger region");
            }
        }

        var vd = r.Child("verdict");
        var verdict = new VerdictSettings
        {
            Threshold = vd.Num("threshold", 3.0, 0, 1000, CalibratedScore),
            UnsureBand = vd.Num("unsure_band", 0.5, 0, 1000),
            Unsure = vd.Str("unsure", "reject", "reject", "accept"),
            WarmingUp = vd.Str("warming_up", "accept", "reject", "accept"),
            DeadlineMs = vd.Int("deadline_ms", 2000, 10, 3_600_000),
            Timeout = vd.Str("timeout", "reject", "reject", "accept"),
            Dropped = vd.Str("dropped", "reject", "reject", "accept"),
        };
        vd.RejectUnknown();
        TypicalPartPasses(vd, verdict, recipesSec, recipes);

        var h = r.Child("heatmap");
        var heatmap = new HeatmapSettings { Publish = h.Str("publish", "fails", "none", "fails", "all"), JpegQuality = h.Int("jpeg_quality", 80, 10, 100) };
        h.RejectUnknown();

        var q = r.Child("mqtt");
        var tlsSec = q.Child("tls");
        var tls = new TlsSettings { Enabled = tlsSec.Bool("enabled", false), CaFile = FilePath(tlsSec, "ca_file", baseDir), AllowUntrusted = tlsSec.Bool("allow_untrusted", false) };
        tlsSec.RejectUnknown();
        var mqtt = new MqttSettings
        {
            Host = q.Str("host", ""),
            Port = q.Int("port", tls.Enabled ? 8883 : 1883, 1, 65535),
            Bind = q.Str("bind", "127.0.0.1"),
            Prefix = q.Str("prefix", "edgeinspector"),
            ClientId = q.Str("client_id", "edgeinspector"),
            Username = q.Str("username", ""),
            PasswordEnv = q.Str("password_env", ""),
            PasswordFile = FilePath(q, "password_file", baseDir),
            Tls = tls,
            SpoolDir = PathField(q, "spool_dir", "spool", baseDir),
            SpoolMaxMessages = q.Int("spool_max_messages", 100_000, 10, 100_000_000),
            SpoolMinFreeMb = q.Int("spool_min_free_mb", 64, 0, 1_000_000),
            StatusIntervalS = q.Num("status_interval_s", 5, 0.1, 3600),
        };
        CheckTopicLevel(q, "prefix", mqtt.Prefix);
        CheckSecret(q, "password", mqtt.PasswordEnv, mqtt.PasswordFile, emptyIsUnset: false);
        if (!System.Net.IPAddress.TryParse(mqtt.Bind, out var bind))
        {
            q.Error(null, "mqtt.bind", $"'{mqtt.Bind}' is not an IP address; expected one address of this machine, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every IPv4 interface)");
        }
        else if (mqtt.Host.Length == 0 && !System.Net.IPAddress.IsLoopback(bind) && (mqtt.Username.Length == 0 || (mqtt.PasswordEnv.Length == 0 && mqtt.PasswordFile.Length == 0)))
        {
            // Anyone on the line's network could otherwise send commands, fake verdicts and read them all.
            q.Error(null, "mqtt.bind", $"{mqtt.Bind} exposes the embedded broker beyond this machine; set mqtt.username and mqtt.password_env (an environment variable) or mqtt.password_file, which every client must then present, or bind 127.0.0.1");
        }
        q.RejectUnknown();

        var l = r.Child("logging");
        var logging = new LoggingSettings
        {
            Dir = PathField(l, "dir", "logs", baseDir),
            Level = l.Str("level", "information", "verbose", "debug", "information", "warning", "error"),
            FileSizeMb = l.Int("file_size_mb", 20, 1, 10_000),
            RetainedFiles = l.Int("retained_files", 10, 1, 1000),
        };
        l.RejectUnknown();

        var a = r.Child("archive");
        var archive = new ArchiveSettings
        {
            Dir = PathField(a, "dir", "archive", baseDir), Save = a.Str("save", "fails", "none", "fails", "all"),
            MaxFiles = a.Int("max_files", 1000, 1, 10_000_000),
            MaxBytes = a.Long("max_bytes", 2_000_000_000, 1_000_000, 1L << 50),
            MinFreeMb = a.Int("min_free_mb", 512, 0, 10_000_000),
        };
        a.RejectUnknown();

        var d = r.Child("drift");
        var drift = new DriftOptions(
            Window: d.Int("window", 200, 8, 100_000),
            RejectRateRise: d.Num("reject_rate_rise", 0.15, 0.01, 1),
            ScoreShift: d.Num("score_shift", 1.0, 0.1, 100));
        d.RejectUnknown();

        var w = r.Child("http");
        var http = new HttpSettings
        {
            Listen = w.Str("listen", "127.0.0.1:8080"),
            TokenEnv = w.Str("token_env", ""),
            TokenFile = FilePath(w, "token_file", baseDir),
        };
        CheckHttp(w, http);
        w.RejectUnknown();

        r.RejectUnknown();
        return new InspectorSettings
        {
            Line = line, Cameras = [.. cameras], Model = model, Engine = engine, Verdict = verdict, Heatmap = heatmap,
            Mqtt = mqtt, Logging = logging, Archive = archive, Drift = drift, Http = http, Recipes = [.. recipes],
        };
    }

    private static void CheckHttp(YamlSection w, HttpSettings http)
    {
        if (http.Listen.Length > 0)
        {
            // TryParse takes a bare address as port 0: the port must be written out.
            if (!System.Net.IPEndPoint.TryParse(http.Listen, out var ep) || !http.Listen.EndsWith($":{ep.Port}", StringComparison.Ordinal))
            {
                w.Error(null, "http.listen", $"'{http.Listen}' is not address:port; expected e.g. 127.0.0.1:8080 (this machine only), 0.0.0.0:8080 (every IPv4 interface), or \"\" to turn HTTP off");
            }
            else if (!System.Net.IPAddress.IsLoopback(ep.Address) && http.TokenEnv.Length == 0 && http.TokenFile.Length == 0)
            {
                // Anyone on the line's network could otherwise read the parts, the archive and the metrics.
                w.Error(null, "http.listen", $"{http.Listen} exposes the web view and metrics beyond this machine; set http.token_env (an environment variable) or http.token_file holding a bearer token, or listen on 127.0.0.1");
            }
        }
        // An empty token would let an empty bearer in.
        CheckSecret(w, "token", http.TokenEnv, http.TokenFile, emptyIsUnset: true);
    }

    /// <summary>
    /// A secret (mqtt's password, http's token) comes from <c>&lt;kind&gt;_env</c> or <c>&lt;kind&gt;_file</c>,
    /// never from the file itself: refused written in, set both ways, or named by a variable that is not set.
    /// </summary>
    private static void CheckSecret(YamlSection s, string kind, string env, string file, bool emptyIsUnset)
    {
        if (s.Has(kind)) s.Error(null, $"{s.Path}.{kind}", $"{kind}s do not belong in this file; use {kind}_env (an environment variable) or {kind}_file");
        string? value = env.Length > 0 ? Environment.GetEnvironmentVariable(env) : null;
        if (env.Length > 0 && (value is null || (emptyIsUnset && string.IsNullOrWhiteSpace(value))))
        {
            s.Error(null, $"{s.Path}.{kind}_env", $"environment variable '{env}' is not set{(emptyIsUnset ? " or empty" : "")} (for systemd: Environment= or EnvironmentFile= in the unit)");
        }
        if (env.Length > 0 && file.Length > 0) s.Error(null, $"{s.Path}.{kind}_file", $"give {kind}_env or {kind}_file, not both");
    }

    /// <summary>engine.tiles: cols, rows, overlap, refs.</summary>
    private static TileSettings Tiles(YamlSection t)
    {
        var d = new TileSettings();
        var tiles = new TileSettings
        {
            Cols = t.Int("cols", d.Cols, 1, 8),
            Rows = t.Int("rows", d.Rows, 1, 8),
            Overlap = t.Num("overlap", d.Overlap, 0, 0.9),
            Refs = t.Str("refs", d.Refs, "position", "pooled"),
        };
        t.RejectUnknown();
        return tiles;
    }

    /// <summary>cameras[].roi: [x, y, width, height] in sensor pixels, or absent for the whole frame.</summary>
    private static PixelRect? Roi(YamlSection c)
    {
        var v = c.NumList("roi", [], 4);
        if (v.Count != 4) return null;
        string path = c.Path + ".roi";
        if (v.Any(x => x != Math.Floor(x) || x > int.MaxValue))
        {
            c.Error(null, path, $"[{string.Join(", ", v)}] must be whole pixels: [x, y, width, height]");
            return null;
        }
        if (v[0] < 0 || v[1] < 0 || v[2] < 1 || v[3] < 1)
        {
            c.Error(null, path, $"[{string.Join(", ", v)}] is not a region: x and y are the top-left corner (0 or more), width and height at least 1");
            return null;
        }
        return new PixelRect((int)v[0], (int)v[1], (int)v[2], (int)v[3]);
    }

    /// <summary>
    /// A path field, resolved against the file's folder. A shell's <c>~</c> or <c>$VARIABLE</c> is refused: nothing
    /// expands them here, and a folder written as <c>~/logs</c> would be made beside this file, named '~'.
    /// </summary>
    private static string PathField(YamlSection s, string key, string fallback, string baseDir) => PathField(s, key, fallback, baseDir, out _);

    private static string PathField(YamlSection s, string key, string fallback, string baseDir, out bool refused)
    {
        string raw = s.Str(key, fallback);
        refused = raw.StartsWith('~') || raw.Contains('$');
        if (refused) s.FieldError(key, $"'{raw}': {(raw.StartsWith('~') ? "~" : "a $VARIABLE")} is not expanded in this file; write the full path, or one relative to this file's folder");
        return Resolve(baseDir, raw);
    }

    private static string Folder(YamlSection s, string key, string baseDir, bool mustExist)
    {
        string p = PathField(s, key, "", baseDir, out bool refused);
        if (p.Length > 0 && mustExist && !refused && !Directory.Exists(p)) s.FieldError(key, $"folder not found: {p}");
        return p;
    }

    private static string FilePath(YamlSection s, string key, string baseDir)
    {
        string p = PathField(s, key, "", baseDir, out bool refused);
        if (p.Length > 0 && !refused && !System.IO.File.Exists(p)) s.FieldError(key, $"file not found: {p}");
        return p;
    }

    private static void CheckTopicLevel(YamlSection s, string key, string value)
    {
        // '/' would split the level, '+' and '#' are a subscriber's wildcards, and MQTT forbids U+0000; spaces and
        // other control characters are legal but break the PLC's and the shell's tools. The rest (a '.', a 'ü') is
        // legal and left to the site.
        if (value.Length == 0 || value.IndexOfAny(['/', '+', '#', ' ']) >= 0 || value.Any(char.IsControl))
        {
            s.FieldError(key, $"'{value}' cannot be an MQTT topic level: it must not be empty, nor hold '/', '+', '#', a space or a control character; letters, digits, '-' and '_' are safe everywhere");
        }
    }

    /// <summary>The HTTP bearer token from the environment variable or file the settings name, or null (no token asked).</summary>
    public static string? Token(HttpSettings http) => Secret(http.TokenEnv, http.TokenFile)?.Trim();

    /// <summary>The MQTT password from the environment variable or file the settings name, or null.</summary>
    public static string? Password(MqttSettings mqtt) => Secret(mqtt.PasswordEnv, mqtt.PasswordFile);

    /// <summary>The value of environment variable <paramref name="env"/>, else the first line of <paramref name="file"/>, else null.</summary>
    private static string? Secret(string env, string file)
    {
        if (env.Length > 0) return Environment.GetEnvironmentVariable(env);
        if (file.Length > 0) return System.IO.File.ReadLines(file).FirstOrDefault()?.TrimEnd('\r');
        return null;
    }
}
