namespace EdgeInspector.Service.Tests;

/// <summary>The warm-up build's scheduler: its parallel loops stay on its own lower-priority threads.</summary>
public class BackgroundSchedulerTests
{
    [Fact]
    public async Task Parallel_loops_given_its_options_run_only_on_the_schedulers_own_threads_nested_ones_too()
    {
        using var scheduler = new BackgroundScheduler(2, BackgroundScheduler.Nice);
        var threads = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        int sum = await scheduler.Run(() =>
        {
            int total = 0;
            // Enough work that the loops replicate onto the scheduler's second worker.
            Parallel.For(0, 20, scheduler.Parallelism, i => Parallel.For(0, 20, scheduler.Parallelism, j =>
            {
                threads.AddOrUpdate(Thread.CurrentThread.Name ?? (Thread.CurrentThread.IsThreadPoolThread ? "pool" : "other"), 1, (_, n) => n + 1);
                Thread.SpinWait(20_000);
                Interlocked.Add(ref total, i * 20 + j);
            }));
            return total;
        });
        Assert.Equal(399 * 400 / 2, sum);
        Assert.All(threads.Keys, name => Assert.StartsWith("background-", name));
        Assert.Equal(2, threads.Count); // both workers took part
    }

    [Fact]
    public void Workers_run_at_the_lower_priority_on_Linux()
    {
        using var scheduler = new BackgroundScheduler(2, BackgroundScheduler.Nice);
        if (!OperatingSystem.IsLinux()) return;
        Assert.All(scheduler.WorkerNice, n => Assert.Equal(BackgroundScheduler.Nice, n));
        Assert.Equal(2, scheduler.MaximumConcurrencyLevel);
    }

    [Fact]
    public async Task A_failure_in_the_work_reaches_the_caller()
    {
        using var scheduler = new BackgroundScheduler(1, BackgroundScheduler.Nice);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => scheduler.Run<int>(() => throw new InvalidOperationException("engine: out of memory")));
        Assert.Equal("engine: out of memory", e.Message);
    }
}
