namespace EdgeInspector.Mqtt;

/// <summary>A message to publish: the spool stores exactly this.</summary>
/// <param name="Topic">Topic.</param>
/// <param name="Payload">Payload bytes.</param>
/// <param name="Retain">Retain flag.</param>
/// <param name="UserProperties">MQTT 5 user properties (name, value).</param>
public sealed record OutgoingMessage(string Topic, byte[] Payload, bool Retain = false, IReadOnlyList<KeyValuePair<string, string>>? UserProperties = null);
