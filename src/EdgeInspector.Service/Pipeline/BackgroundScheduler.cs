using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace EdgeInspector.Service;

/// <summary>
/// Runs background work (the engine's warm-up build) on its own threads at a lower CPU priority, so that it
/// uses the time live frames leave and does not make them late. The build and its parallel loops keep all
/// of their workers here: they take no thread-pool thread that the camera, MQTT or HTTP loops need, and
/// every worker has the lower priority. Linux gives priority per thread (a nice value); elsewhere the thread priority is lowered.
/// A loop joins this scheduler only when it is given <see cref="Parallelism"/>: <c>Parallel.For</c> without
/// options runs on the thread pool even when it is called from a task that runs here.
/// </summary>
internal sealed class BackgroundScheduler : TaskScheduler, IDisposable
{
    /// <summary>
    /// A nice value of 10 weighs about a tenth of a normal thread: while both want a core, a live frame gets
    /// nine tenths of it; at full load the build still moves, so a warm-up cannot be starved for minutes.
    /// </summary>
    public const int Nice = 10;

    private readonly BlockingCollection<Task> _queue = [];
    private readonly Thread[] _threads;
    [ThreadStatic] private static bool t_isWorker;

    /// <summary>The process's one background scheduler, with a worker per core, started on first use.</summary>
    public static BackgroundScheduler Shared => s_shared.Value;
    private static readonly Lazy<BackgroundScheduler> s_shared = new(() => new BackgroundScheduler(Environment.ProcessorCount, Nice));

    /// <summary>The nice value each worker got, or null where lowering it failed or is not Linux (read by the tests).</summary>
    public int?[] WorkerNice { get; }

    public BackgroundScheduler(int threads, int nice)
    {
        _threads = new Thread[Math.Max(1, threads)];
        WorkerNice = new int?[_threads.Length];
        using var started = new CountdownEvent(_threads.Length);
        for (int i = 0; i < _threads.Length; i++)
        {
            int index = i;
            _threads[i] = new Thread(() =>
            {
                t_isWorker = true;
                WorkerNice[index] = LowerPriority(nice);
                started.Signal();
                foreach (var task in _queue.GetConsumingEnumerable()) TryExecuteTask(task);
            })
            { IsBackground = true, Name = $"background-{i}" };
            _threads[i].Start();
        }
        started.Wait();
    }

    public override int MaximumConcurrencyLevel => _threads.Length;

    /// <summary>Options that keep a parallel loop on this scheduler's threads.</summary>
    public ParallelOptions Parallelism => new() { TaskScheduler = this };

    /// <summary>Starts <paramref name="work"/> here; the parallel loops inside it stay here too.</summary>
    public Task<T> Run<T>(Func<T> work) => Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.DenyChildAttach, this);

    protected override void QueueTask(Task task) => _queue.Add(task);

    // A worker that waits on a task of this scheduler runs it itself; no other thread borrows this priority.
    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => t_isWorker && TryExecuteTask(task);

    protected override IEnumerable<Task> GetScheduledTasks() => _queue.ToArray();

    public void Dispose() => _queue.CompleteAdding();

    private static int? LowerPriority(int nice)
    {
        if (!OperatingSystem.IsLinux())
        {
            Thread.CurrentThread.Priority = ThreadPriority.BelowNormal;
            return null;
        }
        try
        {
            // PRIO_PROCESS with a thread id sets that thread's nice value only (Linux threads are tasks).
            return setpriority(0, gettid(), nice) == 0 ? getpriority(0, gettid()) : null;
        }
        catch (EntryPointNotFoundException)
        {
            return null;
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int gettid();

    [DllImport("libc", SetLastError = true)]
    private static extern int setpriority(int which, int who, int prio);

    [DllImport("libc", SetLastError = true)]
    private static extern int getpriority(int which, int who);
}
