using System.Diagnostics;

namespace EdgeInspector.Eval;

/// <summary>Peak resident memory of this process, resettable between modes (Linux /proc).</summary>
internal static class PeakMemory
{
    public static void Reset()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not Linux or not permitted: the peak then covers the whole process so far.
        }
    }

    public static double PeakMb()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return double.Parse(line[6..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
                }
            }
        }
        catch (IOException)
        {
        }
        return Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0);
    }
}

/// <summary>A progress bar on stderr (a line per 10% when stderr is not a terminal).</summary>
internal sealed class Progress(bool quiet)
{
    private string _label = "";
    private int _total, _lastDecile = -1;
    private Stopwatch _sw = new();

    public void Start(string label, int total)
    {
        _label = label;
        _total = Math.Max(1, total);
        _lastDecile = -1;
        _sw = Stopwatch.StartNew();
    }

    public void Report(int done)
    {
        if (quiet) return;
        double fps = done / Math.Max(1e-9, _sw.Elapsed.TotalSeconds);
        double eta = (_total - done) / Math.Max(fps, 1e-9);
        int width = 30, filled = (int)((long)width * done / _total);
        string line = $"{_label,-6} [{new string('#', filled)}{new string('-', width - filled)}] {done}/{_total} frames  {fps:0.0} fps  eta {eta:0}s";
        if (!Console.IsErrorRedirected) Console.Error.Write("\r" + line);
        else
        {
            int decile = 10 * done / _total;
            if (decile != _lastDecile)
            {
                _lastDecile = decile;
                Console.Error.WriteLine(line);
            }
        }
    }

    public void Done()
    {
        if (!quiet && !Console.IsErrorRedirected) Console.Error.WriteLine();
    }
}

/// <summary>Minimal ILogger to the CLI's log writer.</summary>
internal sealed class ConsoleLogger(TextWriter writer) : Microsoft.Extensions.Logging.ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Information;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel)) writer.WriteLine($"{logLevel.ToString().ToLowerInvariant()}: {formatter(state, exception)}");
    }
}
