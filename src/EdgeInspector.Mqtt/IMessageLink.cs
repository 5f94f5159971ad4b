namespace EdgeInspector.Mqtt;

/// <summary>
/// Where a camera's messages go: the seam between the pipeline and the broker. <see cref="MqttLink"/> is
/// the product's; a test drives a stage with its own.
/// </summary>
/// <remarks>No method that queues a message throws: a message that cannot be kept is counted in <see cref="Counters"/>.</remarks>
public interface IMessageLink : IAsyncDisposable
{
    /// <summary>Queues a message for at-least-once, in-order delivery.</summary>
    void Enqueue(OutgoingMessage message);

    /// <summary>Queues a message that may be dropped; false (and counted) when it was.</summary>
    bool TryEnqueueBestEffort(OutgoingMessage message);

    /// <summary>Sets the retained status; published now if connected, and again on every reconnect.</summary>
    void SetStatus(byte[] payload);

    /// <summary>The delivery loop, until <paramref name="ct"/> or <see cref="StopWhenIdle"/>.</summary>
    Task RunAsync(CancellationToken ct);

    /// <summary>Asks the delivery loop to end once nothing is queued in memory (graceful shutdown).</summary>
    void StopWhenIdle();

    /// <summary>What became of every message so far.</summary>
    LinkCounters Counters { get; }

    /// <summary>The last connection, delivery or disk problem, for the status topic (null: none now).</summary>
    string? LastError { get; }
}

/// <summary>
/// What became of the reliable messages a link was given, and of the rest. For reliable messages,
/// <c>Enqueued + Recovered = Delivered + Refused + SpoolOverflow + SpoolWriteFailed + SpoolCorrupt + Queued + Spooled</c>,
/// give or take the one message being sent.
/// </summary>
/// <param name="Enqueued">Reliable messages handed to the link.</param>
/// <param name="Recovered">Spooled messages an earlier run left, picked up at start.</param>
/// <param name="Delivered">Reliable messages the broker acknowledged.</param>
/// <param name="Refused">Reliable messages the broker refused (not authorised, …): logged, not retried.</param>
/// <param name="SpoolOverflow">Oldest spooled messages deleted unsent to make room (spool_max_messages, the free-space floor, a full disk).</param>
/// <param name="SpoolWriteFailed">Messages that could not be written to the spool at all (nothing left to delete, a read-only disk).</param>
/// <param name="SpoolCorrupt">Spool files found unreadable and dropped.</param>
/// <param name="Queued">Reliable messages in memory now.</param>
/// <param name="Spooled">Messages in the spool now.</param>
/// <param name="BestEffortDropped">Best-effort messages (heatmaps) dropped: broker away or queue long.</param>
/// <param name="Connected">Whether the broker connection is up.</param>
public sealed record LinkCounters(
    long Enqueued, long Recovered, long Delivered, long Refused, long SpoolOverflow, long SpoolWriteFailed, long SpoolCorrupt,
    long Queued, long Spooled, long BestEffortDropped, bool Connected)
{
    /// <summary>Reliable messages lost for any reason.</summary>
    public long Lost => Refused + SpoolOverflow + SpoolWriteFailed + SpoolCorrupt;
}
