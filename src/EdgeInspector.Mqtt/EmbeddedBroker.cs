using System.Net;
using Microsoft.Extensions.Logging;
using MQTTnet.Server;

namespace EdgeInspector.Mqtt;

/// <summary>
/// An MQTT broker inside the service, on 127.0.0.1 only, for when no broker is configured: the demo
/// runs alone and a technician can still watch the topics with mosquitto_sub on the same box.
/// </summary>
public sealed class EmbeddedBroker : IAsyncDisposable
{
    private readonly MqttServer _server;

    private EmbeddedBroker(MqttServer server) => _server = server;

    /// <summary>Starts the broker on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<EmbeddedBroker> StartAsync(int port, ILogger? logger = null)
    {
        var options = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointBoundIPAddress(IPAddress.Loopback)
            .WithDefaultEndpointPort(port)
            .Build();
        var server = new MqttServerFactory().CreateMqttServer(options);
        // MQTT 5 clients that send no client id (mosquitto_sub -V 5) get one assigned, as the spec allows.
        server.ValidatingConnectionAsync += e =>
        {
            if (string.IsNullOrEmpty(e.ClientId)) e.AssignedClientIdentifier = "anonymous-" + Guid.NewGuid().ToString("N")[..12];
            return Task.CompletedTask;
        };
        try
        {
            await server.StartAsync();
        }
        catch (Exception e)
        {
            server.Dispose();
            throw new InvalidOperationException($"embedded MQTT broker cannot listen on 127.0.0.1:{port} ({e.Message}); set mqtt.port to a free port or mqtt.host to an existing broker", e);
        }
        logger?.LogInformation("Embedded MQTT broker listening on 127.0.0.1:{Port} (no mqtt.host configured)", port);
        return new EmbeddedBroker(server);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _server.StopAsync(new MqttServerStopOptions());
        _server.Dispose();
    }
}
