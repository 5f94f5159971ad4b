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
public sealed record MqttLinkOptions(
    string Host, int Port, string ClientId, string? Username, string? Password, bool Tls, string? CaFile, bool AllowUntrusted,
    string StatusTopic, byte[] OfflinePayload, IReadOnlyList<string> Subscriptions, string SpoolDir, int SpoolMaxMessages);

/// <summary>
/// One MQTT 5 connection with at-least-once, in-order delivery of what matters. Reliable messages
/// (verdicts, rejects, acknowledgements) are published with QoS 1 and count as delivered only when the
/// broker acknowledges them; while the broker is unreachable they go to the on-disk spool and are
/// delivered from it, oldest first, when it returns, before anything newer. Best-effort messages
/// (heatmaps) are dropped and counted when the broker is away or the queue is long. The retained status
/// goes out on every (re)connect and change; the broker publishes the last will when the link dies.
/// </summary>
/// <remarks>
/// At least once, not exactly once: a message whose acknowledgement was lost in the outage is sent
/// again, so a subscriber de-duplicates by frame id.
/// </remarks>
public sealed class MqttLink : IAsyncDisposable
{
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
    private long _published, _bestEffortDropped, _refused;

    /// <summary>Creates the link; nothing connects until <see cref="RunAsync"/>.</summary>
    public MqttLink(MqttLinkOptions options, Func<string, byte[], Task>? onMessage = null, ILogger? logger = null)
    {
        _o = options;
        _log = logger;
        _onMessage = onMessage;
        _spool = new MessageSpool(options.SpoolDir, options.SpoolMaxMessages);
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

    /// <summary>Messages waiting in the spool.</summary>
    public int Spooled => _spool.Count;

    /// <summary>Messages lost because the spool was full.</summary>
    public long SpoolOverflow => _spool.Overflow;

    /// <summary>Messages in memory waiting for the delivery loop.</summary>
    public int Queued => _queue.Reader.Count;

    /// <summary>Messages the broker acknowledged.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Best-effort messages dropped (broker away or queue long).</summary>
    public long BestEffortDropped => Interlocked.Read(ref _bestEffortDropped);

    /// <summary>Reliable messages the broker refused (not authorised, …): logged, not retried.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>The last connection or delivery problem, for the status topic.</summary>
    public string? LastError { get; private set; }

    /// <summary>Queues a message for at-least-once, in-order delivery.</summary>
    public void Enqueue(OutgoingMessage message)
    {
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
            _spool.Append(message);
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
                    if (!await TryConnectAsync(ct))
                    {
                        await SpoolQueuedAsync(backoff, ct);
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
                    OutgoingMessage? head;
                    long sequence;
                    lock (_spoolGate)
                    {
                        // Anything newer goes behind what is spooled, so delivery stays in order.
                        MoveQueuedToSpool();
                        head = _spool.Peek(out sequence);
                    }
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
                if (item.Reliable) Interlocked.Decrement(ref _reliableQueued);
                if (!item.Reliable)
                {
                    Interlocked.Decrement(ref _bestEffortQueued);
                    if (await PublishAsync(item.Message, ct, reliable: false) == Outcome.Failed) Interlocked.Increment(ref _bestEffortDropped);
                    continue;
                }
                if (await PublishAsync(item.Message, ct) == Outcome.Failed)
                {
                    lock (_spoolGate)
                    {
                        _spool.Append(item.Message);
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
                // A disk error on the spool must not end delivery: log, wait, go on.
                LastError = e.Message;
                _log?.LogError(e, "MQTT delivery loop error");
                await Task.Delay(1000, ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
        lock (_spoolGate) MoveQueuedToSpool(); // what was not delivered survives the restart
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
                Interlocked.Increment(ref _published);
                return Outcome.Delivered;
            }
            Interlocked.Increment(ref _refused);
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

    private async Task SpoolQueuedAsync(TimeSpan wait, CancellationToken ct)
    {
        lock (_spoolGate) MoveQueuedToSpool();
        await Task.Delay(wait, ct);
        lock (_spoolGate) MoveQueuedToSpool();
    }

    /// <summary>Moves every queued reliable message to the spool, in order; best-effort ones are dropped (counted). Caller holds the spool lock.</summary>
    private void MoveQueuedToSpool()
    {
        long before = _spool.Overflow;
        while (_queue.Reader.TryRead(out var item))
        {
            if (item.Reliable)
            {
                Interlocked.Decrement(ref _reliableQueued);
                _spool.Append(item.Message);
            }
            else
            {
                Interlocked.Decrement(ref _bestEffortQueued);
                Interlocked.Increment(ref _bestEffortDropped);
            }
        }
        if (_spool.Overflow > before)
        {
            LastError = $"spool full ({_o.SpoolMaxMessages} messages): {_spool.Overflow} oldest message(s) deleted unsent";
            _log?.LogError("{Error}", LastError);
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
