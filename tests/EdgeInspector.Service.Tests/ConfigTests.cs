using EdgeInspector.Core.Scoring;
using EdgeInspector.Configuration;
using EdgeInspector.Integration.Tests;

namespace EdgeInspector.Service.Tests;

public partial class ConfigTests
{
    private static string RepoConfig()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "config", "edgeinspector.yaml");
            if (File.Exists(p)) return p;
        }
        throw new InvalidOperationException("config/edgeinspector.yaml not found above the test folder");
    }

    [Fact]
    public void The_shipped_config_is_valid_and_resolves_paths_against_its_folder()
    {
        string path = RepoConfig();
        var s = ConfigLoader.Load(path);
        Assert.Equal("line1", s.Line);
        Assert.Single(s.Cameras);
        Assert.Equal("replay", s.Cameras[0].Source);
        Assert.True(Path.IsPathRooted(s.Model.Path));
        Assert.True(File.Exists(s.Model.Path));
        Assert.Equal(Path.Combine(Path.GetDirectoryName(path)!, "spool"), s.Mqtt.SpoolDir);
        Assert.Equal("", s.Mqtt.Host); // embedded broker by default
    }

    private static ConfigException Errors(string yaml)
    {
        using var tmp = new TempFolder();
        return Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "site.yaml", tmp.Path));
    }

    // A minimal valid file (ending in a newline, so that tests can append sections).
    private static string Valid(string tmp) => $"""
line: l1
cameras:
  - name: c1
    source: replay
    replay:
      folder: {tmp}
model:
  path: {Yaml.Model}
""" + "\n";

    [Fact]
    public void Every_problem_is_reported_at_once_with_line_column_and_path()
    {
        using var tmp = new TempFolder();
        string yaml = Valid(tmp.Path) + """
verdict:
  threshold: high
  unsure: maybe
heatmap:
  publsh: all
""";
        var e = Errors(yaml);
        Assert.Equal(3, e.Errors.Count);
        var t = e.Errors.Single(x => x.Path == "verdict.threshold");
        Assert.Equal(("site.yaml", 10, 14), (t.File, t.Line, t.Column));
        Assert.Contains("'high' is not a number", t.Message);
        var u = e.Errors.Single(x => x.Path == "verdict.unsure");
        Assert.Equal(11, u.Line);
        Assert.Contains("expected one of: reject, accept", u.Message);
        var h = e.Errors.Single(x => x.Path == "heatmap.publsh");
        Assert.Equal((13, 3), (h.Line, h.Column));
        Assert.Contains("did you mean 'publish'?", h.Message);
        Assert.Equal("site.yaml:10:14: verdict.threshold: 'high' is not a number; expected 0..1000 (a calibrated score: about 0 for a typical good part, which must pass)", t.ToString());
    }

    [Fact]
    public void Syntax_errors_are_located()
    {
        var e = Errors("line: l1\ncameras:\n  - name: [c1\n");
        var only = Assert.Single(e.Errors);
        Assert.Equal("(syntax)", only.Path);
        Assert.True(only.Line >= 3, only.ToString());
    }

    [Fact]
    public void A_policy_that_would_reject_a_typical_good_part_is_refused_at_its_field()
    {
        using var tmp = new TempFolder();
        // A slipped decimal point: unsure from -2 to 8, every good part unsure and rejected.
        var band = Assert.Single(Errors(Valid(tmp.Path) + "verdict:\n  threshold: 3\n  unsure_band: 5\n").Errors);
        Assert.Equal("site.yaml:11:16: verdict.unsure_band: 5 around verdict.threshold 3 makes parts scored from -2 to 8 unsure, a typical good part (calibrated about 0) among them; the band must be narrower than the threshold", band.ToString());
        var zero = Assert.Single(Errors(Valid(tmp.Path) + "verdict:\n  threshold: 0\n  unsure_band: 0\n").Errors);
        Assert.Equal(("verdict.threshold", 10), (zero.Path, zero.Line));
        Assert.Contains("0 would fail a typical good part", zero.Message);
        var negative = Assert.Single(Errors(Valid(tmp.Path) + "verdict:\n  threshold: -2\n").Errors);
        Assert.Contains("-2 is out of range; expected 0..1000 (a calibrated score: about 0 for a typical good part, which must pass)", negative.Message);
        // A recipe's threshold is checked against the band it is used with.
        var recipe = Assert.Single(Errors(Valid(tmp.Path) + "recipes:\n  small:\n    threshold: 0.4\n").Errors);
        Assert.Equal(("recipes.small.threshold", 11), (recipe.Path, recipe.Line));
        Assert.Contains("0.4 with verdict.unsure_band 0.5 makes parts scored from -0.1 to 0.9 unsure", recipe.Message);
        // Just inside: the band ends above 0.
        ConfigLoader.Parse(Valid(tmp.Path) + "verdict:\n  threshold: 0.6\n  unsure_band: 0.5\nrecipes:\n  small:\n    threshold: 0.6\n", "site.yaml", tmp.Path);
    }

    [Fact]
    public void A_topic_level_is_refused_at_its_value_saying_what_it_must_not_hold()
    {
        using var tmp = new TempFolder();
        var e = Errors(Valid(tmp.Path).Replace("line: l1", "line: \"l\\x01ine\"") + "mqtt:\n  prefix: plant/a\n");
        var line = e.Errors.Single(x => x.Path == "line");
        Assert.Equal((1, 7), (line.Line, line.Column));
        Assert.Contains("nor hold '/', '+', '#', a space or a control character", line.Message);
        Assert.Equal((10, 11), e.Errors.Single(x => x.Path == "mqtt.prefix") is var p ? (p.Line, p.Column) : default);
        // Legal in MQTT and left to the site: a point, a letter beyond ASCII.
        Assert.Equal("linie.süd", ConfigLoader.Parse(Valid(tmp.Path).Replace("line: l1", "line: linie.süd"), "site.yaml", tmp.Path).Line);
    }

    [Fact]
    public void Source_specific_requirements_and_names_are_checked()
    {
        using var tmp = new TempFolder();
        string yaml = $"""
cameras:
  - name: a/b
    source: gige
  - name: v
    source: video
  - name: v
    source: replay
    replay: {"{"} folder: {tmp.Path}/missing {"}"}
model:
  path: {Yaml.Model}
""";
        var e = Errors(yaml);
        var paths = e.Errors.Select(x => x.Path).ToList();
        Assert.Contains("cameras[0].name", paths);         // '/' cannot be in a topic level
        Assert.Contains("cameras[0].gige.camera", paths);  // gige needs an address, serial or id
        Assert.Contains("cameras[1].video.uri", paths);
        Assert.Contains("cameras[2].name", paths);         // used twice
        Assert.Contains(e.Errors, x => x.Path == "cameras[2].replay.folder" && x.Message.StartsWith("folder not found"));
    }

    [Fact]
    public void A_region_of_interest_is_whole_pixels_inside_the_frame_and_at_least_the_models_input()
    {
        using var tmp = new TempFolder();
        string Camera(string name, string roi) => $"""
  - name: {name}
    source: replay
    replay: {"{"} folder: {tmp.Path} {"}"}
    roi: {roi}
""" + "\n";
        string yaml = "cameras:\n" + Camera("ok", "[100, 50, 640, 480]") + Camera("small", "[0, 0, 200, 480]") + Camera("neg", "[-1, 0, 640, 480]")
            + Camera("frac", "[0.5, 0, 640, 480]") + Camera("three", "[0, 0, 640]") + $"model:\n  path: {Yaml.Model}\n";
        var e = Errors(yaml);
        Assert.DoesNotContain(e.Errors, x => x.Path.StartsWith("cameras[0]"));
        Assert.Contains(e.Errors, x => x.Path == "cameras[1].roi" && x.Message.Contains("200×480") && x.Message.Contains("smaller than the model's 224×224 input"));
        Assert.Contains(e.Errors, x => x.Path == "cameras[2].roi" && x.Message.Contains("not a region"));
        Assert.Contains(e.Errors, x => x.Path == "cameras[3].roi" && x.Message.Contains("whole pixels"));
        Assert.Contains(e.Errors, x => x.Path == "cameras[4].roi" && x.Message.Contains("expected 4 numbers"));

        var s = ConfigLoader.Parse(Valid(tmp.Path).Replace("    source: replay\n", "    source: replay\n    roi: [100, 50, 640, 480]\n"), "site.yaml", tmp.Path);
        Assert.Equal(new EdgeInspector.Core.Tiling.PixelRect(100, 50, 640, 480), s.Cameras[0].Roi);
        Assert.Null(ConfigLoader.Parse(Valid(tmp.Path), "site.yaml", tmp.Path).Cameras[0].Roi);
    }

    [Fact]
    public void Tiles_are_counted_overlapped_below_one_and_never_smaller_than_the_models_input()
    {
        using var tmp = new TempFolder();
        var s = ConfigLoader.Parse(Valid(tmp.Path) + "engine:\n  tiles: {cols: 3, rows: 2, overlap: 0.1, refs: pooled}\n", "site.yaml", tmp.Path);
        Assert.Equal(new TileSettings { Cols = 3, Rows = 2, Overlap = 0.1, Refs = "pooled" }, s.Engine.Tiles);
        Assert.Equal(new TileSettings(), ConfigLoader.Parse(Valid(tmp.Path), "site.yaml", tmp.Path).Engine.Tiles); // 1 x 1 by default
        var e = Errors(Valid(tmp.Path) + "engine:\n  tiles: {cols: 0, overlap: 1, refs: nearest}\n");
        Assert.Contains(e.Errors, x => x.Path == "engine.tiles.cols");
        Assert.Contains(e.Errors, x => x.Path == "engine.tiles.overlap");
        Assert.Contains(e.Errors, x => x.Path == "engine.tiles.refs" && x.Message.Contains("position"));
        // A 640 x 480 region in 3 x 3 tiles without overlap: 214 x 160 pixels, below 224.
        string withRegion = Valid(tmp.Path).Replace("    source: replay\n", "    source: replay\n    roi: [0, 0, 640, 480]\n");
        e = Errors(withRegion + "engine:\n  tiles: {cols: 3, rows: 3}\n");
        Assert.Contains(e.Errors, x => x.Path == "engine.tiles" && x.Message.Contains("camera 'c1''s 640×480 region are 214×160 pixels, smaller than the model's 224×224 input"));
        Assert.Equal(2, ConfigLoader.Parse(withRegion + "engine:\n  tiles: {cols: 2, rows: 1}\n", "site.yaml", tmp.Path).Engine.Tiles.Count);
    }

    [Fact]
    public void Passwords_never_come_from_the_file_but_from_the_environment_or_a_file()
    {
        using var tmp = new TempFolder();
        var e = Errors(Valid(tmp.Path) + "mqtt:\n  username: plc\n  password: secret\n");
        Assert.Contains(e.Errors, x => x.Path == "mqtt.password" && x.Message.Contains("password_env"));

        string var = "EI_TEST_PW_" + Guid.NewGuid().ToString("N")[..6];
        var missing = Errors(Valid(tmp.Path) + $"mqtt:\n  username: plc\n  password_env: {var}\n");
        Assert.Contains(missing.Errors, x => x.Path == "mqtt.password_env" && x.Message.Contains("is not set"));

        Environment.SetEnvironmentVariable(var, "from-env");
        try
        {
            var s = ConfigLoader.Parse(Valid(tmp.Path) + $"mqtt:\n  username: plc\n  password_env: {var}\n", "site.yaml", tmp.Path);
            Assert.Equal("from-env", ConfigLoader.Password(s.Mqtt));
        }
        finally
        {
            Environment.SetEnvironmentVariable(var, null);
        }
        File.WriteAllText(Path.Combine(tmp.Path, "pw.txt"), "from-file\nignored\n");
        var f = ConfigLoader.Parse(Valid(tmp.Path) + "mqtt:\n  username: plc\n  password_file: pw.txt\n", "site.yaml", tmp.Path);
        Assert.Equal("from-file", ConfigLoader.Password(f.Mqtt));
    }

    [Fact]
    public void The_shipped_schema_is_the_one_generated_from_the_validator_and_the_commented_file()
    {
        string yaml = RepoConfig(), schema = Path.Combine(Path.GetDirectoryName(yaml)!, "edgeinspector.schema.json");
        Assert.StartsWith("# yaml-language-server: $schema=edgeinspector.schema.json", File.ReadAllText(yaml));
        Assert.True(ConfigSchema.Generate(File.ReadAllText(yaml)) == File.ReadAllText(schema),
            "config/edgeinspector.schema.json is out of date: regenerate it with\n  dotnet src/EdgeInspector.Service/bin/Release/net10.0/edgeinspector.dll schema --config config/edgeinspector.yaml > config/edgeinspector.schema.json");
    }

    [Fact]
    public void Every_field_the_validator_reads_is_in_the_commented_file_with_a_comment_and_no_other()
    {
        var comments = ConfigSchema.Comments(File.ReadAllText(RepoConfig()));
        var paths = ConfigSchema.Paths();
        Assert.Empty(paths.Except(comments.Keys));           // read by the validator, missing from the file
        Assert.Empty(comments.Keys.Except(paths));           // in the file, unknown to the validator
        Assert.Empty(comments.Where(c => c.Value.Length == 0).Select(c => c.Key)); // undocumented
        Assert.Contains("cameras[].gige.trigger_line", paths); // commented-out examples count
        Assert.Contains("recipes.*.threshold", paths);
        Assert.DoesNotContain("mqtt.password", paths);         // refused, never read
    }

    [Fact]
    public void The_schema_ranges_and_allowed_values_are_the_ones_the_validator_enforces()
    {
        using var tmp = new TempFolder();
        var schema = System.Text.Json.JsonDocument.Parse(ConfigSchema.Generate(File.ReadAllText(RepoConfig()))).RootElement.GetProperty("properties");
        int checkedFields = 0;
        foreach (string section in new[] { "model", "engine", "verdict", "heatmap", "mqtt", "logging", "archive" })
        {
            foreach (var field in schema.GetProperty(section).GetProperty("properties").EnumerateObject())
            {
                var f = field.Value;
                string? bad = null;
                if (f.TryGetProperty("enum", out _)) bad = "not-an-allowed-value";
                else if (f.TryGetProperty("maximum", out var max) && max.GetDouble() < 1e9)
                {
                    bad = (f.GetProperty("type").GetString() == "integer" ? (max.GetDouble() + 1).ToString(System.Globalization.CultureInfo.InvariantCulture) : (max.GetDouble() * 2 + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
                if (bad is null) continue;
                // Valid() ends inside its model section: a model field is appended to it.
                var e = Errors(Valid(tmp.Path) + (section == "model" ? "" : $"{section}:\n") + $"  {field.Name}: {bad}\n");
                Assert.Contains(e.Errors, x => x.Path == $"{section}.{field.Name}");
                checkedFields++;
            }
        }
        Assert.True(checkedFields >= 20, $"only {checkedFields} fields checked");
    }

    [Fact]
    public void Every_project_in_the_tree_is_in_the_solution_that_CI_builds()
    {
        string root = Path.GetDirectoryName(Path.GetDirectoryName(RepoConfig()))!;
        string sln = File.ReadAllText(Path.Combine(root, "EdgeInspector.sln"));
        var projects = Directory.EnumerateFiles(root, "*.csproj", SearchOption.AllDirectories)
            .Where(p => !p.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .Select(p => Path.GetRelativePath(root, p).Replace('/', '\\')).ToList();
        Assert.NotEmpty(projects);
        Assert.All(projects, p => Assert.Contains($"\"{p}\"", sln));
    }

    [Fact]
    public void The_embedded_broker_beyond_loopback_needs_credentials_from_the_environment_or_a_file()
    {
        using var tmp = new TempFolder();
        var open = Errors(Valid(tmp.Path) + "mqtt:\n  bind: 0.0.0.0\n");
        Assert.Contains(open.Errors, x => x.Path == "mqtt.bind" && x.Message.Contains("exposes the embedded broker beyond this machine") && x.Message.Contains("password_env"));
        var userOnly = Errors(Valid(tmp.Path) + "mqtt:\n  bind: 192.168.0.10\n  username: plc\n");
        Assert.Contains(userOnly.Errors, x => x.Path == "mqtt.bind");
        var bad = Errors(Valid(tmp.Path) + "mqtt:\n  bind: localhost\n");
        Assert.Contains(bad.Errors, x => x.Path == "mqtt.bind" && x.Message.Contains("is not an IP address"));
        File.WriteAllText(Path.Combine(tmp.Path, "pw.txt"), "s3cret\n");
        var ok = ConfigLoader.Parse(Valid(tmp.Path) + "mqtt:\n  bind: 0.0.0.0\n  username: plc\n  password_file: pw.txt\n", "site.yaml", tmp.Path);
        Assert.Equal("0.0.0.0", ok.Mqtt.Bind);
        // Loopback needs nothing; an external broker (mqtt.host) does not use bind at all.
        Assert.Equal("127.0.0.1", ConfigLoader.Parse(Valid(tmp.Path), "site.yaml", tmp.Path).Mqtt.Bind);
        ConfigLoader.Parse(Valid(tmp.Path) + "mqtt:\n  host: broker.line\n  bind: 0.0.0.0\n", "site.yaml", tmp.Path);
    }

    [Fact]
    public void Http_beyond_loopback_needs_a_token_from_the_environment_or_a_file()
    {
        using var tmp = new TempFolder();
        var open = Errors(Valid(tmp.Path) + "http:\n  listen: 0.0.0.0:8080\n");
        Assert.Contains(open.Errors, x => x.Path == "http.listen" && x.Message.Contains("exposes the web view and metrics beyond this machine") && x.Message.Contains("token_env"));
        var bad = Errors(Valid(tmp.Path) + "http:\n  listen: localhost\n");
        Assert.Contains(bad.Errors, x => x.Path == "http.listen" && x.Message.Contains("is not address:port"));
        var inFile = Errors(Valid(tmp.Path) + "http:\n  token: abc\n");
        Assert.Contains(inFile.Errors, x => x.Path == "http.token" && x.Message.Contains("do not belong in this file"));
        var unset = Errors(Valid(tmp.Path) + "http:\n  listen: 0.0.0.0:8080\n  token_env: EI_TEST_UNSET_TOKEN\n");
        Assert.Contains(unset.Errors, x => x.Path == "http.token_env" && x.Message.Contains("EI_TEST_UNSET_TOKEN"));
        File.WriteAllText(Path.Combine(tmp.Path, "token.txt"), "t0ken\n");
        var ok = ConfigLoader.Parse(Valid(tmp.Path) + "http:\n  listen: 0.0.0.0:9090\n  token_file: token.txt\n", "site.yaml", tmp.Path);
        Assert.Equal("0.0.0.0:9090", ok.Http.Listen);
        Assert.Equal("t0ken", ConfigLoader.Token(ok.Http));
        // Loopback by default, with no token; "" turns HTTP off.
        var plain = ConfigLoader.Parse(Valid(tmp.Path), "site.yaml", tmp.Path);
        Assert.Equal("127.0.0.1:8080", plain.Http.Listen);
        Assert.Null(ConfigLoader.Token(plain.Http));
        Assert.Equal("", ConfigLoader.Parse(Valid(tmp.Path) + "http:\n  listen: \"\"\n", "site.yaml", tmp.Path).Http.Listen);
    }

    [Fact]
    public void Defaults_apply_to_fields_left_out()
    {
        using var tmp = new TempFolder();
        var s = ConfigLoader.Parse(Valid(tmp.Path), "site.yaml", tmp.Path);
        Assert.Equal(3.0, s.Verdict.Threshold);
        Assert.Equal("drop_oldest", s.Engine.DropPolicy);
        Assert.Equal(["stage2", "stage3"], s.Model.Taps);
        Assert.Equal(1883, s.Mqtt.Port);
        Assert.Equal("fails", s.Heatmap.Publish);
        // The engine's defaults are the engine's own, defined once.
        Assert.Equal(EngineOptions.Default, s.Engine.Options);
        Assert.Equal(60, s.Engine.SnapshotIntervalS);
    }

    [Fact]
    public void Engine_settings_are_read_and_range_checked()
    {
        using var tmp = new TempFolder();
        var s = ConfigLoader.Parse(Valid(tmp.Path) + "engine:\n  reservoir_frames: 32\n  reservoir_keep: 0.5\n  batch: 16\n  score_dims: 0\n  snapshot_interval_s: 5\n  scoring: onnx\n", "site.yaml", tmp.Path);
        Assert.Equal(EngineOptions.Default with { ReservoirFrames = 32, ReservoirKeep = 0.5, Batch = 16, ScoreDims = 0 }, s.Engine.Options);
        Assert.Equal(5, s.Engine.SnapshotIntervalS);
        Assert.Equal("onnx", s.Engine.Scoring);
        Assert.Equal("auto", ConfigLoader.Parse(Valid(tmp.Path), "site.yaml", tmp.Path).Engine.Scoring);
        var e = Errors(Valid(tmp.Path) + "engine:\n  reservoir_frames: 1\n  reservoir_keep: 2\n  snapshot_interval_s: 61\n  scoring: gpu\n");
        Assert.Equal(4, e.Errors.Count);
        Assert.Contains(e.Errors, w => w.Path == "engine.scoring" && w.Message.Contains("'gpu' is not allowed; expected one of: auto, managed, onnx"));
        Assert.Contains(e.Errors, w => w.Path == "engine.reservoir_frames" && w.Message.Contains("expected 2..1024"));
        Assert.Contains(e.Errors, w => w.Path == "engine.reservoir_keep" && w.Message.Contains("expected 0.01..1"));
        Assert.Contains(e.Errors, w => w.Path == "engine.snapshot_interval_s" && w.Message.Contains("expected 1..60"));
    }

    [Fact]
    public void Fields_of_the_old_coreset_engine_are_refused_with_what_to_do()
    {
        using var tmp = new TempFolder();
        var e = Errors(Valid(tmp.Path) + "engine:\n  warmup_batches: 1\n  coreset_max_per_patches: 4\n");
        Assert.Equal(2, e.Errors.Count);
        Assert.All(e.Errors, w => Assert.Contains("this field was removed", w.Message));
        Assert.All(e.Errors, w => Assert.Contains("delete the line", w.Message));
        Assert.Contains(e.Errors, w => w.Path == "engine.warmup_batches");
        Assert.Contains(e.Errors, w => w.Path == "engine.coreset_max_per_patches");
    }
}
