using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace EdgeInspector.Mqtt;

/// <summary>
/// An MQTT broker inside the service, for when no broker is configured: the demo runs alone and a
/// technician can still watch the topics with mosquitto_sub on the same box. It listens on exactly one
/// address (127.0.0.1 unless told otherwise) and on no other address family: MQTTnet's default endpoint
/// would otherwise add an IPv6 listener on every interface. With credentials set, every client must
/// present them.
/// </summary>
public sealed class EmbeddedBroker : IAsyncDisposable
{
    private readonly MqttServer _server;

    private EmbeddedBroker(MqttServer server, IPEndPoint endpoint)
    {
        _server = server;
        Endpoint = endpoint;
    }

    /// <summary>Where it listens, and nowhere else.</summary>
    public IPEndPoint Endpoint { get; }

    /// <summary>Starts the broker on <paramref name="bind"/>:<paramref name="port"/>.</summary>
    /// <param name="bind">The one address to listen on.</param>
    /// <param name="port">The port.</param>
    /// <param name="username">With <paramref name="password"/>: the only credentials accepted; null: anonymous clients are let in.</param>
    /// <param name="password">The password for <paramref name="username"/>.</param>
    /// <param name="logger">Where to say where it listens.</param>
    public static async Task<EmbeddedBroker> StartAsync(IPAddress bind, int port, string? username = null, string? password = null, ILogger? logger = null)
    {
        bool v6 = bind.AddressFamily == AddressFamily.InterNetworkV6;
        var options = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointPort(port)
            // IPAddress.None switches a family's listener off.
            .WithDefaultEndpointBoundIPAddress(v6 ? IPAddress.None : bind)
            .WithDefaultEndpointBoundIPV6Address(v6 ? bind : IPAddress.None)
            .Build();
        var server = new MqttServerFactory().CreateMqttServer(options);
        byte[]? expectedUser = username is null ? null : Encoding.UTF8.GetBytes(username);
        byte[]? expectedPassword = password is null ? null : Encoding.UTF8.GetBytes(password);
        server.ValidatingConnectionAsync += e =>
        {
            if (expectedUser is not null)
            {
                byte[] user = Encoding.UTF8.GetBytes(e.UserName ?? ""), given = Encoding.UTF8.GetBytes(e.Password ?? "");
                bool ok = CryptographicOperations.FixedTimeEquals(user, expectedUser) & CryptographicOperations.FixedTimeEquals(given, expectedPassword ?? []);
                if (!ok)
                {
                    e.ReasonCode = MqttConnectReasonCode.BadUserNameOrPassword;
                    return Task.CompletedTask;
                }
            }
            // MQTT 5 clients that send no client id (mosquitto_sub -V 5) get one assigned, as the spec allows.
            if (string.IsNullOrEmpty(e.ClientId)) e.AssignedClientIdentifier = "anonymous-" + Guid.NewGuid().ToString("N")[..12];
            return Task.CompletedTask;
        };
        var endpoint = new IPEndPoint(bind, port);
        try
        {
            await server.StartAsync();
        }
        catch (Exception e)
        {
            server.Dispose();
            throw new InvalidOperationException($"embedded MQTT broker cannot listen on {endpoint} ({e.Message}); set mqtt.port to a free port or mqtt.host to an existing broker", e);
        }
        logger?.LogInformation("Embedded MQTT broker listening on {Endpoint} only{Auth} (no mqtt.host configured)", endpoint, expectedUser is null ? ", anonymous clients allowed" : $", user '{username}' required");
        return new EmbeddedBroker(server, endpoint);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _server.StopAsync(new MqttServerStopOptions());
        _server.Dispose();
    }
}
