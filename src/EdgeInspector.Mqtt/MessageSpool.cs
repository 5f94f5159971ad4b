using System.Text;

namespace EdgeInspector.Mqtt;

/// <summary>
/// A bounded, ordered, on-disk queue of messages the broker has not acknowledged yet. One file per
/// message, named by a sequence number and written through a temporary file and a rename, so a crash or
/// power cut leaves either the whole message or none, and a restarted service delivers what is left in
/// order. When full, the oldest message is deleted and counted as overflow: the count is reported on the
/// status topic and in the log, never silent.
/// </summary>
/// <remarks>Not thread-safe: owned by one delivery loop.</remarks>
public sealed class MessageSpool
{
    private readonly string _dir;
    private readonly int _max;
    private readonly Queue<long> _sequence = new();
    private long _next;

    /// <summary>Opens (or creates) the spool in <paramref name="dir"/>, picking up what a previous run left.</summary>
    public MessageSpool(string dir, int maxMessages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessages, 1);
        _dir = dir;
        _max = maxMessages;
        Directory.CreateDirectory(dir);
        foreach (string tmp in Directory.EnumerateFiles(dir, "*.tmp")) File.Delete(tmp); // torn writes from a crash
        var existing = new List<long>();
        foreach (string f in Directory.EnumerateFiles(dir, "*.msg"))
        {
            if (long.TryParse(Path.GetFileNameWithoutExtension(f), out long n)) existing.Add(n);
        }
        existing.Sort();
        foreach (long n in existing) _sequence.Enqueue(n);
        _next = existing.Count > 0 ? existing[^1] + 1 : 1;
    }

    /// <summary>Messages waiting.</summary>
    public int Count => _sequence.Count;

    /// <summary>Messages deleted unsent because the spool was full, since this spool was opened.</summary>
    public long Overflow { get; private set; }

    private string PathOf(long n) => Path.Combine(_dir, n.ToString("D16") + ".msg");

    /// <summary>Appends a message; deletes the oldest when full.</summary>
    public void Append(OutgoingMessage message)
    {
        while (_sequence.Count >= _max)
        {
            File.Delete(PathOf(_sequence.Dequeue()));
            Overflow++;
        }
        long n = _next++;
        string path = PathOf(n), tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        using (var w = new BinaryWriter(fs, Encoding.UTF8))
        {
            w.Write(message.Topic);
            w.Write(message.Retain);
            var props = message.UserProperties ?? [];
            w.Write(props.Count);
            foreach (var (k, v) in props)
            {
                w.Write(k);
                w.Write(v);
            }
            w.Write(message.Payload.Length);
            w.Write(message.Payload);
        }
        File.Move(tmp, path);
        _sequence.Enqueue(n);
    }

    /// <summary>The oldest message, or null when empty. A file that cannot be read is dropped and counted.</summary>
    public OutgoingMessage? Peek() => Peek(out _);

    /// <summary>The oldest message and its sequence number (for <see cref="Remove(long)"/>).</summary>
    public OutgoingMessage? Peek(out long sequence)
    {
        sequence = 0;
        while (_sequence.TryPeek(out long n))
        {
            try
            {
                using var r = new BinaryReader(File.OpenRead(PathOf(n)), Encoding.UTF8);
                string topic = r.ReadString();
                bool retain = r.ReadBoolean();
                int count = r.ReadInt32();
                var props = new List<KeyValuePair<string, string>>(count);
                for (int i = 0; i < count; i++) props.Add(new(r.ReadString(), r.ReadString()));
                byte[] payload = r.ReadBytes(r.ReadInt32());
                sequence = n;
                return new OutgoingMessage(topic, payload, retain, props);
            }
            catch (Exception e) when (e is IOException or EndOfStreamException or FormatException)
            {
                Corrupt++;
                Remove();
            }
        }
        return null;
    }

    /// <summary>Spool files found unreadable (disk errors) and dropped.</summary>
    public long Corrupt { get; private set; }

    /// <summary>Removes the oldest message once the broker has acknowledged it.</summary>
    public void Remove()
    {
        if (_sequence.TryDequeue(out long n)) File.Delete(PathOf(n));
    }

    /// <summary>
    /// Removes message <paramref name="sequence"/> if it is still the oldest: when overflow deleted it
    /// while it was being sent, the new head must not be removed in its place.
    /// </summary>
    public void Remove(long sequence)
    {
        if (_sequence.TryPeek(out long n) && n == sequence) Remove();
    }
}
