using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using MQTTnet;
using MQTTnet.Protocol;

namespace EdgeInspector.Mqtt;

/// <summary>How a link reaches its broker and where it spools.</summary>
/// <param name="Host">Broker host.</param>
/// <param name="Port">Broker port.</param>
/// <param name="ClientId">Client id (unique per camera pipeline: each has its own last will).</param>
/// <param name="Username">User name, or null for anonymous.</param>
/// <param name="Password">Password (from the environment or a file, never from the YAML).</param>
/// <param name="Tls">Use TLS.</param>
/// <param name="CaFile">PEM CA certificate to trust, or null for the system store.</param>
/// <param name="AllowUntrusted">Accept any certificate (commissioning only).</param>
/// <param name="StatusTopic">Retained status topic; the last will sets it offline.</param>
/// <param name="OfflinePayload">Last-will payload.</param>
/// <param name="Subscriptions">Topics subscribed (commands, part ids); messages go to the handler.</param>
/// <param name="SpoolDir">Spool directory.</param>
/// <param name="SpoolMaxMessages">Spool bound.</param>
/// <param name="SpoolMinFreeBytes">Free disk space the spool leaves: below it, the oldest spooled message makes way for each new one.</param>
public sealed record MqttLinkOptions(
    string Host, int Port, string ClientId, string? Username, string? Password, bool Tls, string? CaFile, bool AllowUntrusted,
    string StatusTopic, byte[] OfflinePayload, IReadOnlyList<string> Subscriptions, string SpoolDir, int SpoolMaxMessages, long SpoolMinFreeBytes = 0);

/// <summary>
/// One MQTT 5 connection with at-least-once, in-order delivery of what matters. Reliable messages
/// (verdicts, rejects, acknowledgements) are published with QoS 1 and count as delivered only when the
/// broker acknowledges them; while the broker is unreachable they go to the on-disk spool and are
/// delivered from it, oldest first, when it returns, before anything newer. Best-effort messages
/// (heatmaps) are dropped and counted when the broker is away or the queue is long. The retained status
/// goes out on every (re)connect and change; the broker publishes the last will when the link dies.
/// </summary>
/// <remarks>
/// <para>At least once, not exactly once: a message whose acknowledgement was lost in the outage is sent
/// again, so a subscriber de-duplicates by frame id.</para>
/// <para>While the link is disconnected, a reliable message reaches the spool as soon as the delivery
/// loop wakes for it (it waits on the queue, not on the reconnect back-off): within
/// <see cref="SpoolLatencyBound"/> of <see cref="Enqueue"/>, so a crash during an outage loses only
/// what was decided in that last moment. Disk trouble never stops delivery: a full disk costs the
/// oldest spooled messages (counted), and live messages keep flowing from memory.</para>
/// </remarks>
public sealed class MqttLink : IMessageLink
{
    /// <summary>
    /// How long a reliable message queued while the link is disconnected may stay in memory only. The
    /// loop moves it at once; the bound leaves room for a loaded machine's scheduling. Documented, and
    /// tested by killing the service during an outage.
    /// </summary>
    public static readonly TimeSpan SpoolLatencyBound = TimeSpan.FromMilliseconds(250);

    private const int BestEffortLimit = 8;
    private readonly MqttLinkOptions _o;
    private readonly ILogger? _log;
    private readonly IMqttClient _client;
    private readonly MqttClientOptions _clientOptions;
    private readonly Channel<(OutgoingMessage Message, bool Reliable)> _queue = Channel.CreateUnbounded<(OutgoingMessage, bool)>();
    private readonly MessageSpool _spool;
    private readonly Func<string, byte[], Task>? _onMessage;
    private int _bestEffortQueued;
    // Reliable messages held in memory at most; beyond that they go straight to the (bounded) spool,
    // so a broker that is connected but slow cannot make the service grow without bound.
    private const int MemoryLimit = 1024;
    private int _reliableQueued;
    private readonly Lock _spoolGate = new();
    private volatile byte[]? _status;
    private volatile bool _statusDirty;
    private long _delivered, _enqueued, _bestEffortDropped, _refused;

    /// <summary>Creates the link; nothing connects until <see cref="RunAsync"/>.</summary>
    public MqttLink(MqttLinkOptions options, Func<string, byte[], Task>? onMessage = null, ILogger? logger = null)
    {
        _o = options;
        _log = logger;
        _onMessage = onMessage;
        _spool = new MessageSpool(options.SpoolDir, options.SpoolMaxMessages, options.SpoolMinFreeBytes);
        _client = new MqttClientFactory().CreateMqttClient();
        var b = new MqttClientOptionsBuilder()
            .WithTcpServer(options.Host, options.Port)
            .WithClientId(options.ClientId)
            .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V500)
            .WithCleanStart(true)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(5))
            .WithTimeout(TimeSpan.FromSeconds(5))
            .WithWillTopic(options.StatusTopic)
            .WithWillPayload(options.OfflinePayload)
            .WithWillRetain(true)
            .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);
        if (!string.IsNullOrEmpty(options.Username)) b.WithCredentials(options.Username, options.Password ?? "");
        if (options.Tls)
        {
            b.WithTlsOptions(t =>
            {
                t.UseTls(true).WithAllowUntrustedCertificates(options.AllowUntrusted).WithTargetHost(options.Host);
                if (!string.IsNullOrEmpty(options.CaFile))
                {
                    var chain = new X509Certificate2Collection();
                    chain.ImportFromPemFile(options.CaFile);
                    t.WithTrustChain(chain);
                }
                if (options.AllowUntrusted) t.WithCertificateValidationHandler(_ => true);
            });
        }
        _clientOptions = b.Build();
        _client.ApplicationMessageReceivedAsync += OnMessage;
        if (_spool.Count > 0) _log?.LogInformation("Spool {Dir}: {Count} message(s) from an earlier run will be delivered first", options.SpoolDir, _spool.Count);
    }

    /// <inheritdoc />
    public LinkCounters Counters
    {
        get
        {
            lock (_spoolGate)
            {
                return new LinkCounters(Interlocked.Read(ref _enqueued), _spool.Recovered, Interlocked.Read(ref _delivered), Interlocked.Read(ref _refused),
                    _spool.Overflow, _spool.WriteFailed, _spool.Corrupt, Math.Max(0, Volatile.Read(ref _reliableQueued)), _spool.Count,
                    Interlocked.Read(ref _bestEffortDropped), _client.IsConnected);
            }
        }
    }

    /// <summary>The last connection, delivery or disk problem, for the status topic.</summary>
    public string? LastError { get; private set; }

    /// <inheritdoc />
    public void Enqueue(OutgoingMessage message)
    {
        Interlocked.Increment(ref _enqueued);
        if (Interlocked.Increment(ref _reliableQueued) <= MemoryLimit)
        {
            _queue.Writer.TryWrite((message, true));
            return;
        }
        Interlocked.Decrement(ref _reliableQueued);
        // Over the limit: everything queued goes to disk first, then this message, so order is kept.
        lock (_spoolGate)
        {
            MoveQueuedToSpool();
            Spool(message);
        }
    }

    /// <summary>Queues a message that may be dropped; false (and counted) when it was.</summary>
    public bool TryEnqueueBestEffort(OutgoingMessage message)
    {
        if (!_client.IsConnected || Volatile.Read(ref _bestEffortQueued) >= BestEffortLimit)
        {
            Interlocked.Increment(ref _bestEffortDropped);
            return false;
        }
        Interlocked.Increment(ref _bestEffortQueued);
        _queue.Writer.TryWrite((message, false));
        return true;
    }

    /// <summary>Sets the retained status; published now if connected, and again on every reconnect.</summary>
    public void SetStatus(byte[] payload)
    {
        _status = payload;
        _statusDirty = true;
    }

    private async Task OnMessage(MqttApplicationMessageReceivedEventArgs e)
    {
        if (_onMessage is null) return;
        try
        {
            await _onMessage(e.ApplicationMessage.Topic, System.Buffers.BuffersExtensions.ToArray(e.ApplicationMessage.Payload));
        }
        catch (Exception ex)
        {
            _log?.LogError(ex, "Message on {Topic} failed", e.ApplicationMessage.Topic);
        }
    }

    private volatile bool _stopWhenIdle;

    /// <summary>Asks the delivery loop to end once the queue is empty (graceful shutdown); spooled messages wait for the next run.</summary>
    public void StopWhenIdle() => _stopWhenIdle = true;

    /// <summary>The delivery loop: connects with back-off, drains the spool, then the queue.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!ct.IsCancellationRequested)
        {
            if (_stopWhenIdle && (_queue.Reader.Count == 0 || !_client.IsConnected)) break;
            try
            {
                if (!_client.IsConnected)
                {
                    // Disconnected: what is queued goes to disk now, and so does whatever arrives while the
                    // connection is tried and while the back-off runs (a crash then loses nothing decided).
                    lock (_spoolGate) MoveQueuedToSpool();
                    var connect = TryConnectAsync(ct);
                    await SpoolWhileWaiting(connect, ct);
                    if (!await connect)
                    {
                        await SpoolWhileWaiting(Task.Delay(backoff, ct), ct);
                        backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 5000));
                        continue;
                    }
                    backoff = TimeSpan.FromMilliseconds(250);
                }
                if (_statusDirty && _status is { } status)
                {
                    _statusDirty = false;
                    await PublishAsync(new OutgoingMessage(_o.StatusTopic, status, Retain: true), ct);
                }
                if (_spool.Count > 0)
                {
                    // Spooled messages are older than anything queued in memory: they go first. The queue
                    // stays in memory meanwhile (it reaches the disk only past MemoryLimit), so a disk that
                    // is full or failing does not hold up delivery.
                    OutgoingMessage? head;
                    long sequence;
                    lock (_spoolGate) head = _spool.Peek(out sequence);
                    if (head is null) continue;
                    var outcome = await PublishAsync(head, ct);
                    bool drained;
                    lock (_spoolGate)
                    {
                        if (outcome != Outcome.Failed) _spool.Remove(sequence);
                        drained = _spool.Count == 0;
                    }
                    if (drained) _log?.LogInformation("Spool drained: every message held back is delivered");
                    continue;
                }
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wait.CancelAfter(TimeSpan.FromMilliseconds(500));
                (OutgoingMessage Message, bool Reliable) item;
                try
                {
                    if (!_queue.Reader.TryRead(out item))
                    {
                        await _queue.Reader.WaitToReadAsync(wait.Token);
                        continue;
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    continue; // periodic wake-up: status changes, connection checks
                }
                if (!item.Reliable)
                {
                    Interlocked.Decrement(ref _bestEffortQueued);
                    if (await PublishAsync(item.Message, ct, reliable: false) == Outcome.Failed) Interlocked.Increment(ref _bestEffortDropped);
                    continue;
                }
                var sent = await PublishAsync(item.Message, ct);
                lock (_spoolGate)
                {
                    // Counted out of memory only here, so that the counters never lose the message in flight.
                    Interlocked.Decrement(ref _reliableQueued);
                    if (sent == Outcome.Failed)
                    {
                        Spool(item.Message);
                        MoveQueuedToSpool();
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // Nothing here is expected to throw; if it does, delivery must not end: log, wait, go on.
                LastError = e.Message;
                _log?.LogError(e, "MQTT delivery loop error");
                await Task.Delay(1000, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
        lock (_spoolGate) MoveQueuedToSpool(); // what was not delivered survives the restart
    }

    /// <summary>Until <paramref name="task"/> ends, moves every reliable message that is queued to the spool as it arrives.</summary>
    private async Task SpoolWhileWaiting(Task task, CancellationToken ct)
    {
        while (!task.IsCompleted)
        {
            using var wake = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var readable = _queue.Reader.WaitToReadAsync(wake.Token).AsTask();
            await Task.WhenAny(task, readable);
            wake.Cancel();
            await ((Task)readable).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            lock (_spoolGate) MoveQueuedToSpool();
            if (ct.IsCancellationRequested) break;
        }
        await task.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task<bool> TryConnectAsync(CancellationToken ct)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            var result = await _client.ConnectAsync(_clientOptions, timeout.Token);
            if (result.ResultCode != MqttClientConnectResultCode.Success)
            {
                LastError = $"broker {_o.Host}:{_o.Port} refused the connection: {result.ResultCode} {result.ReasonString}";
                _log?.LogWarning("{Error}", LastError);
                return false;
            }
            foreach (string topic in _o.Subscriptions)
            {
                await _client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(topic, MqttQualityOfServiceLevel.AtLeastOnce).Build(), ct);
            }
            _statusDirty = _status is not null;
            _log?.LogInformation("MQTT connected to {Host}:{Port} as {ClientId}{Spool}", _o.Host, _o.Port, _o.ClientId, _spool.Count > 0 ? $"; delivering {_spool.Count} spooled message(s)" : "");
            LastError = null;
            return true;
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            string error = $"broker {_o.Host}:{_o.Port} unreachable: {e.Message}";
            if (error != LastError) _log?.LogWarning("{Error}; verdicts are spooled to {Dir} until it returns", error, _o.SpoolDir);
            LastError = error;
            return false;
        }
    }

    private enum Outcome { Delivered, Refused, Failed }

    private async Task<Outcome> PublishAsync(OutgoingMessage m, CancellationToken ct, bool reliable = true)
    {
        var b = new MqttApplicationMessageBuilder()
            .WithTopic(m.Topic)
            .WithPayload(m.Payload)
            .WithRetainFlag(m.Retain)
            .WithQualityOfServiceLevel(reliable ? MqttQualityOfServiceLevel.AtLeastOnce : MqttQualityOfServiceLevel.AtMostOnce);
        if (m.UserProperties is { } props)
        {
            foreach (var (k, v) in props) b.WithUserProperty(k, new ReadOnlyMemory<byte>(System.Text.Encoding.UTF8.GetBytes(v)));
        }
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var r = await _client.PublishAsync(b.Build(), timeout.Token);
            if (r.IsSuccess || r.ReasonCode == MqttClientPublishReasonCode.NoMatchingSubscribers)
            {
                if (reliable && !m.Retain) Interlocked.Increment(ref _delivered);
                return Outcome.Delivered;
            }
            if (reliable && !m.Retain) Interlocked.Increment(ref _refused);
            LastError = $"broker refused a message on {m.Topic}: {r.ReasonCode} {r.ReasonString}";
            _log?.LogError("{Error}", LastError);
            return Outcome.Refused;
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            LastError = $"publish on {m.Topic} failed: {e.Message}";
            return Outcome.Failed;
        }
    }

    /// <summary>Moves every queued reliable message to the spool, in order; best-effort ones are dropped (counted). Caller holds the spool lock.</summary>
    private void MoveQueuedToSpool()
    {
        while (_queue.Reader.TryRead(out var item))
        {
            if (item.Reliable)
            {
                Interlocked.Decrement(ref _reliableQueued);
                Spool(item.Message);
            }
            else
            {
                Interlocked.Decrement(ref _bestEffortQueued);
                Interlocked.Increment(ref _bestEffortDropped);
            }
        }
    }

    /// <summary>Writes one message to the spool; what the disk costs is counted and said once per kind of loss. Caller holds the spool lock.</summary>
    private void Spool(OutgoingMessage message)
    {
        long overflow = _spool.Overflow;
        if (!_spool.TryAppend(message))
        {
            LastError = $"spool: a message on {message.Topic} could not be written ({_spool.LastWriteError}); {_spool.WriteFailed} lost so far";
            if (_spool.WriteFailed == 1 || _spool.WriteFailed % 1000 == 0) _log?.LogError("{Error}", LastError);
        }
        else if (_spool.Overflow > overflow)
        {
            string why = _spool.LastWriteError is { } e ? $"disk: {e}" : $"{_o.SpoolMaxMessages} messages";
            LastError = $"spool full ({why}): {_spool.Overflow} oldest message(s) deleted unsent";
            // Said at the first loss and then every thousandth, not once per message.
            if (overflow == 0 || _spool.Overflow / 1000 > overflow / 1000) _log?.LogError("{Error}", LastError);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_client.IsConnected)
        {
            // A clean shutdown says offline itself (the broker sends the will only on an unclean loss).
            try
            {
                await PublishAsync(new OutgoingMessage(_o.StatusTopic, _o.OfflinePayload, Retain: true), CancellationToken.None);
                await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build());
            }
            catch (Exception e)
            {
                _log?.LogDebug(e, "MQTT disconnect");
            }
        }
        _client.Dispose();
    }
}
