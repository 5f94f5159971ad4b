using EdgeInspector.Configuration;
using EdgeInspector.Service;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Serilog;
using Serilog.Events;

// edgeinspector run --config <file>       the line service
// edgeinspector validate --config <file>  check a configuration edit before saving it in place
string usage = "usage: edgeinspector run --config <file.yaml>\n       edgeinspector validate --config <file.yaml>";
if (args.Length < 1 || args[0] is "-h" or "--help")
{
    Console.WriteLine(usage);
    return args.Length < 1 ? 2 : 0;
}
string verb = args[0];
int ci = Array.IndexOf(args, "--config");
string? configPath = ci >= 0 && ci + 1 < args.Length ? args[ci + 1] : null;
if (verb is not ("run" or "validate") || configPath is null)
{
    Console.Error.WriteLine(usage);
    return 2;
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
if (verb == "validate")
{
    Console.WriteLine($"{configPath}: valid ({settings.Cameras.Length} camera(s), line {settings.Line}).");
    return 0;
}

try
{
    Directory.CreateDirectory(settings.Logging.Dir);
    File.WriteAllText(Path.Combine(settings.Logging.Dir, ".write-test"), "");
    File.Delete(Path.Combine(settings.Logging.Dir, ".write-test"));
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"edgeinspector: {configPath}: logging.dir: cannot write to {settings.Logging.Dir}: {e.Message}");
    return 2;
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
    builder.Services.AddSingleton<InspectionService>();
    builder.Services.AddHostedService(sp => sp.GetRequiredService<InspectionService>());
    builder.Services.AddHostedService<WatchdogService>();
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
    using var host = builder.Build();
    await host.RunAsync();
    return 0;
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
