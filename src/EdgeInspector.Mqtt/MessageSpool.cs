using System.Text;

namespace EdgeInspector.Mqtt;

/// <summary>
/// A bounded, ordered, on-disk queue of messages the broker has not acknowledged yet. One file per
/// message, named by a sequence number and written through a temporary file and a rename, so a crash or
/// power cut leaves either the whole message or none, and a restarted service delivers what is left in
/// order.
/// </summary>
/// <remarks>
/// Full means either <c>maxMessages</c> held or the disk below its free-space floor (or out of space
/// outright): then the oldest message is deleted to make room (<see cref="Overflow"/>), so a full disk
/// costs the oldest verdicts, never the newest, and never stops the spool. A message that cannot be
/// written even so (an empty spool on a full disk, a read-only disk) is counted in
/// <see cref="WriteFailed"/> and <see cref="TryAppend"/> returns false; it never throws for a disk
/// problem. Not thread-safe: its owner serialises access.
/// </remarks>
public sealed class MessageSpool
{
    private readonly string _dir;
    private readonly int _max;
    private readonly long _minFreeBytes;
    private readonly Queue<long> _sequence = new();
    private long _next;

    /// <summary>Opens (or creates) the spool in <paramref name="dir"/>, picking up what a previous run left.</summary>
    /// <param name="dir">The spool's folder.</param>
    /// <param name="maxMessages">Messages held at most.</param>
    /// <param name="minFreeBytes">Free space the spool leaves on its disk: below it, the spool does not grow.</param>
    public MessageSpool(string dir, int maxMessages, long minFreeBytes = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessages, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(minFreeBytes);
        _dir = dir;
        _max = maxMessages;
        _minFreeBytes = minFreeBytes;
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
        Recovered = existing.Count;
    }

    /// <summary>Messages waiting.</summary>
    public int Count => _sequence.Count;

    /// <summary>Messages found from an earlier run when the spool was opened.</summary>
    public int Recovered { get; }

    /// <summary>Oldest messages deleted unsent to make room (count bound, free-space floor or a full disk), since this spool was opened.</summary>
    public long Overflow { get; private set; }

    /// <summary>Messages that could not be written at all (nothing left to delete, or the disk refused), since this spool was opened.</summary>
    public long WriteFailed { get; private set; }

    /// <summary>The last disk error met while writing, for the status topic.</summary>
    public string? LastWriteError { get; private set; }

    private string PathOf(long n) => Path.Combine(_dir, n.ToString("D16") + ".msg");

    /// <summary>Appends a message, deleting the oldest ones when full; false (counted) when it could not be written.</summary>
    public bool TryAppend(OutgoingMessage message)
    {
        while (_sequence.Count >= _max) DropOldest();
        // Below the floor the spool does not grow: the oldest message makes way for the newest.
        if (_minFreeBytes > 0 && FreeBytes() < _minFreeBytes)
        {
            if (_sequence.Count == 0)
            {
                WriteFailed++;
                LastWriteError = $"{_dir}: less than {_minFreeBytes / (1024 * 1024)} MB free (mqtt.spool_min_free_mb)";
                return false;
            }
            DropOldest();
        }
        // A full disk: make room from the oldest and try again, a few times (a message may be larger than the one deleted).
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                Write(message);
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LastWriteError = $"{_dir}: {e.Message}";
                if (attempt >= 8 || _sequence.Count == 0 || e is UnauthorizedAccessException)
                {
                    WriteFailed++;
                    return false;
                }
                DropOldest();
            }
        }
    }

    private long FreeBytes()
    {
        try { return new DriveInfo(Path.GetFullPath(_dir)).AvailableFreeSpace; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return long.MaxValue; }
    }

    private void DropOldest()
    {
        long n = _sequence.Dequeue();
        try { File.Delete(PathOf(n)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { LastWriteError = $"{_dir}: {e.Message}"; }
        Overflow++;
    }

    private void Write(OutgoingMessage message)
    {
        long n = _next;
        string path = PathOf(n), tmp = path + ".tmp";
        try
        {
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
        }
        catch
        {
            try { File.Delete(tmp); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            throw;
        }
        _next++;
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
            catch (Exception e) when (e is IOException or EndOfStreamException or FormatException or UnauthorizedAccessException or ArgumentException)
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
        if (!_sequence.TryDequeue(out long n)) return;
        try { File.Delete(PathOf(n)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { LastWriteError = $"{_dir}: {e.Message}"; }
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
