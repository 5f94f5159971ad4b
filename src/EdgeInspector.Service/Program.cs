using EdgeInspector.Configuration;
using EdgeInspector.Service;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Serilog;
using Serilog.Events;

// edgeinspector run --config <file>       the line service
// edgeinspector validate --config <file>  check a configuration edit before saving it in place
// edgeinspector schema --config <file>    the JSON Schema for editors, with that file's comments as descriptions
string usage = "usage: edgeinspector run --config <file.yaml>\n       edgeinspector validate --config <file.yaml>\n       edgeinspector schema --config <commented file.yaml>   (prints the JSON Schema for editors)";
if (args.Length < 1 || args[0] is "-h" or "--help")
{
    Console.WriteLine(usage);
    return args.Length < 1 ? 2 : 0;
}
string verb = args[0];
int ci = Array.IndexOf(args, "--config");
string? configPath = ci >= 0 && ci + 1 < args.Length ? args[ci + 1] : null;
if (verb is not ("run" or "validate" or "schema") || configPath is null)
{
    Console.Error.WriteLine(usage);
    return 2;
}
if (verb == "schema")
{
    // The schema's descriptions are the comments of the shipped file: config/edgeinspector.schema.json
    // is this command's output on config/edgeinspector.yaml (a test keeps them the same).
    Console.Write(ConfigSchema.Generate(File.ReadAllText(configPath)));
    return 0;
}

InspectorSettings settings;
try
{
    settings = ConfigLoader.Load(configPath);
}
catch (ConfigException e)
{
    Console.Error.WriteLine($"edgeinspector: {configPath} is not valid; nothing was started.");
    foreach (var error in e.Errors) Console.Error.WriteLine("  " + error);
    return 2;
}
// What the service refuses at start, validate refuses too: folders it must write to, and the model,
// loaded and probed exactly as the service loads it (the taps, the input size, the providers).
var problems = Preflight.Folders(settings);
string? modelSummary = null;
if (verb == "validate")
{
    try
    {
        modelSummary = Preflight.Model(settings.Model, out var layout);
        if (Preflight.EngineMemory(settings, layout) is { } memory) problems.Add("engine.memory_mb: " + memory);
    }
    catch (EdgeInspector.Inference.Onnx.BackboneException e)
    {
        problems.Add(e.Message);
    }
}
if (problems.Count > 0)
{
    Console.Error.WriteLine($"edgeinspector: {configPath} is not valid; nothing was started.");
    foreach (string p in problems) Console.Error.WriteLine($"  {configPath}: {p}");
    return 2;
}
if (verb == "validate")
{
    Console.WriteLine($"{configPath}: valid ({settings.Cameras.Length} camera(s), line {settings.Line}); model loaded and probed: {modelSummary}.");
    foreach (string note in Preflight.Notes(settings)) Console.WriteLine($"  note: {configPath}: {note}");
    return 0;
}

var level = settings.Logging.Level switch
{
    "verbose" => LogEventLevel.Verbose,
    "debug" => LogEventLevel.Debug,
    "warning" => LogEventLevel.Warning,
    "error" => LogEventLevel.Error,
    _ => LogEventLevel.Information,
};
const string template = "{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz} [{Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}";
Log.Logger = new LoggerConfiguration()
    .MinimumLevel.Is(level)
    .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
    .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
    .WriteTo.Console(outputTemplate: template, standardErrorFromLevel: LogEventLevel.Verbose)
    .WriteTo.File(Path.Combine(settings.Logging.Dir, "edgeinspector-.log"), outputTemplate: template,
        rollingInterval: RollingInterval.Day, rollOnFileSizeLimit: true,
        fileSizeLimitBytes: settings.Logging.FileSizeMb * 1024L * 1024L, retainedFileCountLimit: settings.Logging.RetainedFiles,
        flushToDiskInterval: TimeSpan.FromSeconds(1))
    .CreateLogger();

try
{
    var builder = Host.CreateApplicationBuilder();
    builder.Services.AddSystemd();
    // AddSystemd registers the notifier only when systemd started the process; the watchdog service
    // wants it always (it checks NOTIFY_SOCKET itself), which also makes READY/WATCHDOG testable.
    builder.Services.TryAddSingleton<Microsoft.Extensions.Hosting.Systemd.ISystemdNotifier, Microsoft.Extensions.Hosting.Systemd.SystemdNotifier>();
    builder.Services.AddSerilog();
    builder.Services.AddSingleton(new ConfigFile(Path.GetFullPath(configPath), settings));
    builder.Services.AddSingleton<ServiceMetrics>();
    builder.Services.AddSingleton<InspectionService>();
    builder.Services.AddHostedService(sp => sp.GetRequiredService<InspectionService>());
    // After the inspection: the model is loaded and the pipelines run before /readyz can be asked.
    builder.Services.AddHostedService<WebFront>();
    builder.Services.AddHostedService<WatchdogService>();
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
    using var host = builder.Build();
    var inspection = host.Services.GetRequiredService<InspectionService>(); // RunAsync disposes the container
    await host.RunAsync();
    return inspection.ExitCode;
}
catch (ConfigException e)
{
    // A setting that only the loaded model shows to be unusable (the engine's memory): exit 2, as above.
    Log.Fatal("EdgeInspector cannot start: {Message}", e.Message);
    return 2;
}
catch (EdgeInspector.Inference.Onnx.BackboneException e)
{
    // A model that cannot be used is a configuration error: exit 2, which the systemd unit does not
    // restart (RestartPreventExitStatus=2), instead of a crash loop.
    Log.Fatal("EdgeInspector cannot start: {Config}: {Message}", configPath, e.Message);
    return 2;
}
catch (Exception e)
{
    Log.Fatal(e, "EdgeInspector failed: {Message}", e.Message);
    return 1;
}
finally
{
    await Log.CloseAndFlushAsync();
}
