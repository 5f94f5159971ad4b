using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace EdgeInspector.Service;

/// <summary>
/// Commands: reads what arrives on the camera's subscribed topics. Part ids go to the
/// <see cref="PartIdQueue"/>; triggers to the acquisition stage (<paramref name="trigger"/>: null when
/// taken, else why not), whose verdict answers them; a malformed or refused trigger is answered on the
/// acknowledgement topic. Every message on the command topic is answered, refused at once saying why
/// when malformed (never echoing more than a short id and name), or queued for the inference stage,
/// which owns the engine and acknowledges it once applied.
/// </summary>
internal sealed class CommandHandler(Topics topics, string camera, PartIdQueue partIds, Func<string, string?> trigger, Func<LiveSettings> live, VerdictPublisher publisher)
{
    /// <summary>A command to apply on the inference thread.</summary>
    public sealed record Command(string Id, string Name, string? Recipe);

    /// <summary>The largest command accepted: a command is a few dozen bytes; anything near this is not one.</summary>
    public const int MaxCommandBytes = 16 * 1024;

    private const string Form = "expected {\"id\":\"…\",\"command\":\"reset\"} or {\"id\":\"…\",\"command\":\"switch_recipe\",\"recipe\":\"…\"}";

    private readonly ConcurrentQueue<Command> _pending = new();

    /// <summary>Takes the next command to apply, if any.</summary>
    public bool TryTake(out Command? command) => _pending.TryDequeue(out command);

    public Task OnMessageAsync(string topic, byte[] payload)
    {
        if (topic == topics.Part(camera))
        {
            partIds.Announce(Clip(Encoding.UTF8.GetString(payload).Trim(), 256));
            return Task.CompletedTask;
        }
        if (topic == topics.Trigger(camera))
        {
            string? refused = ParseTrigger(payload, out string id, out string? partId) ? trigger(partId!) : $"expected {TriggerForm}";
            if (refused is not null) publisher.Ack(id, "trigger", false, refused);
            return Task.CompletedTask;
        }
        if (Parse(payload, out var command, out string refusal)) Accept(command!);
        else publisher.Ack(command?.Id ?? "", command?.Name ?? "", false, refusal);
        return Task.CompletedTask;
    }

    private void Accept(Command c)
    {
        var settings = live().Settings;
        switch (c.Name)
        {
            case "reset" or "reset_coreset": // reset_coreset: the name before the engine had no coreset
                _pending.Enqueue(c with { Name = "reset", Recipe = null });
                break;
            case "switch_recipe" when c.Recipe is not null && settings.Recipe(c.Recipe) is not null:
                _pending.Enqueue(c);
                break;
            case "switch_recipe":
                publisher.Ack(c.Id, c.Name, false, $"unknown recipe '{Clip(c.Recipe ?? "", 64)}'; defined: {string.Join(", ", settings.Recipes.Select(x => x.Name))}");
                break;
            default:
                publisher.Ack(c.Id, c.Name, false, $"unknown command '{c.Name}'; expected reset (or its old name reset_coreset) or switch_recipe");
                break;
        }
    }

    /// <summary>Reads a command; false with the reason (and whatever id and name were read) when it is malformed.</summary>
    internal static bool Parse(byte[] payload, out Command? command, out string refusal)
    {
        command = null;
        refusal = "";
        if (payload.Length > MaxCommandBytes)
        {
            refusal = $"a command of {payload.Length} bytes is refused (at most {MaxCommandBytes}); {Form}";
            return false;
        }
        try
        {
            using var doc = JsonDocument.Parse(payload);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                refusal = $"a JSON {Kind(root.ValueKind)} is not a command; {Form}";
                return false;
            }
            string id = root.TryGetProperty("id", out var i) ? Clip(i.ValueKind == JsonValueKind.String ? i.GetString()! : i.GetRawText(), 64) : "";
            command = new Command(id, "", null);
            if (!root.TryGetProperty("command", out var c) || c.ValueKind != JsonValueKind.String)
            {
                refusal = c.ValueKind == JsonValueKind.Undefined ? $"no 'command' field; {Form}" : $"'command' must be a string, not a {Kind(c.ValueKind)}; {Form}";
                return false;
            }
            command = command with { Name = Clip(c.GetString()!, 64) };
            if (root.TryGetProperty("recipe", out var r) && r.ValueKind != JsonValueKind.Null)
            {
                if (r.ValueKind != JsonValueKind.String)
                {
                    refusal = $"'recipe' must be a string, not a {Kind(r.ValueKind)}; {Form}";
                    return false;
                }
                command = command with { Recipe = r.GetString() };
            }
            return true;
        }
        catch (JsonException e)
        {
            refusal = $"not JSON ({Clip(e.Message, 200)}); {Form}";
            return false;
        }
    }

    private const string TriggerForm = "{\"part_id\":\"…\",\"id\":\"…\"} on the trigger topic";

    /// <summary>Reads a trigger: its part id (a non-empty string, at most 256 characters) and its optional id.</summary>
    internal static bool ParseTrigger(byte[] payload, out string id, out string? partId)
    {
        id = "";
        partId = null;
        if (payload.Length > MaxCommandBytes) return false;
        try
        {
            using var doc = JsonDocument.Parse(payload);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return false;
            if (root.TryGetProperty("id", out var i)) id = Clip(i.ValueKind == JsonValueKind.String ? i.GetString()! : i.GetRawText(), 64);
            if (root.TryGetProperty("part_id", out var p) && p.ValueKind == JsonValueKind.String && p.GetString()!.Trim().Length > 0 && p.GetString()!.Length <= 256)
            {
                partId = p.GetString()!.Trim();
            }
            return partId is not null;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string Kind(JsonValueKind k) => k switch
    {
        JsonValueKind.Array => "array",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        JsonValueKind.Object => "object",
        _ => "string",
    };

    private static string Clip(string s, int max) => s.Length <= max ? s : s[..max] + "…";
}
