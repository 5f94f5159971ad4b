using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Service;

/// <summary>
/// systemd's watchdog. .NET's systemd integration sends READY=1 and STOPPING=1 but no watchdog pings, and
/// pinging from a timer alone would keep a wedged service alive. So a ping goes out only while every
/// pipeline stage has reported recently: a stage stuck in the backbone, a camera call or a dead loop
/// stops the pings and systemd restarts the service (WatchdogSec= in the unit).
/// </summary>
internal sealed class WatchdogService(ISystemdNotifier notifier, InspectionService inspection, IHostApplicationLifetime lifetime, ILogger<WatchdogService> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // READY=1 once every hosted service has started: the model is loaded and probed, pipelines run.
        // (Sent here rather than by .NET's SystemdLifetime, which is only active when systemd is the parent.)
        lifetime.ApplicationStarted.Register(() =>
        {
            if (notifier.IsEnabled) notifier.Notify(new ServiceState("READY=1\nSTATUS=inspecting"));
        });
        string? usec = Environment.GetEnvironmentVariable("WATCHDOG_USEC");
        if (!notifier.IsEnabled || !long.TryParse(usec, NumberStyles.Integer, CultureInfo.InvariantCulture, out long us) || us <= 0) return;
        var period = TimeSpan.FromMicroseconds(us);
        var interval = period / 3;
        log.LogInformation("systemd watchdog: {Period:0.#} s; pinging every {Interval:0.#} s while the pipeline moves", period.TotalSeconds, interval.TotalSeconds);
        bool stalled = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            if (inspection.IsMoving(period / 2))
            {
                notifier.Notify(new ServiceState("WATCHDOG=1"));
                if (stalled) log.LogInformation("Pipeline moving again; watchdog pings resumed");
                stalled = false;
            }
            else if (!stalled)
            {
                stalled = true;
                log.LogError("A pipeline stage has not reported for {Age:0.#} s: withholding watchdog pings so that systemd restarts the service", (period / 2).TotalSeconds);
            }
            try { await Task.Delay(interval, stoppingToken); }
            catch (OperationCanceledException) { break; }
        }
    }
}
