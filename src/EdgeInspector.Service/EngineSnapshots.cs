using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using EdgeInspector.Core.Features;
using EdgeInspector.Core.Numerics;
using EdgeInspector.Core.Scoring;
using EdgeInspector.Core.Tiling;

namespace EdgeInspector.Service;

/// <summary>
/// What a learned state was made with: the model, the tap layout, the engine's settings and the recipe.
/// A snapshot is taken up only when all four match the running service.
/// </summary>
internal sealed record SnapshotKey(string Model, string Layout, string Engine, string Recipe, string Region = SnapshotKey.WholeFrame)
{
    /// <summary>The region of a camera without an ROI (and of snapshots written before regions were recorded).</summary>
    public const string WholeFrame = "whole frame";

    /// <summary>Patches per frame of the running layout (0 for a key read from a file): how a whole frame's rows divide into views' dims.</summary>
    public int Patches { get; init; }

    public static SnapshotKey For(string modelHash, FeatureLayout layout, EngineOptions options, string recipe, string region = WholeFrame)
    {
        var views = new StringBuilder();
        foreach (var v in layout.Views) views.Append(views.Length == 0 ? "" : ",").Append($"{v.Tap}/a{v.Degree}:{v.Dim}");
        return new SnapshotKey(modelHash, $"{layout.GridHeight}x{layout.GridWidth};{views}", options.Fingerprint(), recipe, region) { Patches = layout.Patches };
    }

    /// <summary>Why <paramref name="saved"/> does not fit this key, or null when it does.</summary>
    public string? Mismatch(SnapshotKey saved)
    {
        if (saved.Model != Model) return $"it was made with another model (hash {Short(saved.Model)}, running {Short(Model)})";
        if (saved.Layout != Layout) return $"it was made with another tap layout ({saved.Layout}, running {Layout})";
        if (saved.Engine != Engine) return $"it was made with other engine settings ({saved.Engine}, running {Engine})";
        if (saved.Recipe != Recipe) return $"it was made for recipe '{saved.Recipe}', the camera runs '{Recipe}'";
        // What is normal in one region says nothing about another.
        if (saved.Region != Region) return $"it was made for the region {saved.Region}, the camera now inspects {Region}";
        return null;
    }

    private static string Short(string hash) => hash.Length > 12 ? hash[..12] : hash;

    public string Text() => $"model={Model}\nlayout={Layout}\nengine={Engine}\nrecipe={Recipe}\nregion={Region}\n";

    public static SnapshotKey Parse(string text)
    {
        var fields = Fields(text);
        string F(string name) => fields.TryGetValue(name, out var v) ? v : throw new InvalidDataException($"its header has no '{name}'");
        return new SnapshotKey(F("model"), F("layout"), F("engine"), F("recipe"), fields.TryGetValue("region", out var region) ? region : WholeFrame);
    }

    /// <summary>One field of a header's text, or null.</summary>
    public static string? Field(string text, string name) => Fields(text).TryGetValue(name, out var v) ? v : null;

    private static Dictionary<string, string> Fields(string text)
    {
        var fields = new Dictionary<string, string>();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = line.IndexOf('=');
            if (eq > 0) fields[line[..eq]] = line[(eq + 1)..];
        }
        return fields;
    }
}

/// <summary>
/// A camera's learned state on disk, beside its spool, so that a restart scores from its first frame. The
/// file is written whole to a temporary name, flushed to the disk and renamed over the old one, so a crash
/// leaves either the old snapshot or the new one. It ends with a SHA-256 of everything before it: a torn
/// or corrupted file is refused, never half taken up.
/// </summary>
/// <remarks>
/// Layout (little-endian): magic "EISNAP07", int32 header bytes, the header (UTF-8 key text, then
/// the runs whose frames it holds: <see cref="EngineIds"/>), then one state:
/// int32 frames; per frame: int64 id, int32 views, int32 kept patches (−1: none, the rows are the kept
/// patches; otherwise the rows are the whole frame, as a reservoir that searches a window holds it, and
/// int32 patches follows), then per view int32 values, the float step and the values as levels in signed
/// bytes (<see cref="WindowGrid.ToLevels"/>), then the kept patches' indices if any; int32 calibration
/// scores and the scores; int64 frames quarantined; then the 32-byte hash. A tiled engine (one state per
/// tile position) writes "EISNAP08", the header, int32 states and the states one after the other. A byte
/// per value, as the engine holds it: the levels come back as the same bytes, and a restored engine scores
/// as the one that saved it. Files of an earlier layout (EISNAP01–06) are refused as another format version.
/// </remarks>
internal static class EngineSnapshots
{
    private static readonly byte[] Magic = "EISNAP07"u8.ToArray();
    private static readonly byte[] MagicTiled = "EISNAP08"u8.ToArray();

    /// <summary>The header's field for the runs whose frames the snapshot holds: not part of the key, which says what made the state.</summary>
    private const string RunsField = "runs";

    /// <summary>Largest file taken up: a reservoir of 1024 frames of full-width views is far below it.</summary>
    private const long MaxBytes = 4L << 30;

    /// <summary>Writes one engine's <paramref name="state"/> atomically to <paramref name="path"/>.</summary>
    public static void Save(string path, SnapshotKey key, LearnedState state) => Save(path, key, [state]);

    /// <summary>
    /// Writes a (tiled) engine's <paramref name="states"/> atomically to <paramref name="path"/>, with the runs
    /// whose frames they hold (<see cref="EngineIds.Text"/>) when given.
    /// </summary>
    public static void Save(string path, SnapshotKey key, IReadOnlyList<LearnedState> states, string? runs = null)
    {
        DurableFile.Replace(path, file =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            void Write(ReadOnlySpan<byte> bytes)
            {
                file.Write(bytes);
                hash.AppendData(bytes);
            }
            var n = new byte[8];
            void Int(int v) { BinaryPrimitives.WriteInt32LittleEndian(n, v); Write(n.AsSpan(0, 4)); }
            void Long(long v) { BinaryPrimitives.WriteInt64LittleEndian(n, v); Write(n); }
            void Floats(float[] v) { Int(v.Length); Write(MemoryMarshal.AsBytes(v.AsSpan())); }
            sbyte[] levels = [];
            // A view as the reservoir holds it: its value count, step and levels.
            void Levels(IHeldFrames held, int index, int view)
            {
                int length = held.LengthOf(index, view);
                Int(length);
                if (levels.Length < length) levels = new sbyte[length];
                BinaryPrimitives.WriteSingleLittleEndian(n, held.CopyLevels(index, view, levels.AsSpan(0, length)));
                Write(n.AsSpan(0, 4));
                Write(MemoryMarshal.AsBytes(levels.AsSpan(0, length)));
            }

            Write(states.Count == 1 ? Magic : MagicTiled);
            byte[] header = Encoding.UTF8.GetBytes(key.Text() + (runs is null ? "" : $"{RunsField}={runs}\n"));
            Int(header.Length);
            Write(header);
            if (states.Count != 1) Int(states.Count);
            foreach (var state in states)
            {
                // A running engine's capture is read as held, never a whole frame in floats.
                var held = HeldFrames.Of(state.Frames);
                Int(held.Count);
                for (int i = 0; i < held.Count; i++)
                {
                    int views = held.ViewsOf(i);
                    int[]? kept = held.KeptOf(i);
                    Long(held.IdOf(i));
                    Int(views);
                    Int(kept?.Length ?? -1);
                    if (kept is not null)
                    {
                        if (key.Patches <= 0) throw new ArgumentException("A whole frame is saved with the running layout's key (SnapshotKey.For).", nameof(key));
                        Int(key.Patches);
                    }
                    for (int v = 0; v < views; v++)
                    {
                        if (kept is not null && held.LengthOf(i, v) % key.Patches != 0)
                            throw new ArgumentException($"Frame {held.IdOf(i)}: {held.LengthOf(i, v)} values is not a whole frame of {key.Patches} patches.", nameof(states));
                        Levels(held, i, v);
                    }
                    foreach (int k in kept ?? []) Int(k);
                }
                Floats(state.Calibration);
                Long(state.Quarantined);
            }
            file.Write(hash.GetHashAndReset());
        }, bufferSize: 1 << 16);
    }

    /// <summary>
    /// Reads the snapshot at <paramref name="path"/> if it fits <paramref name="key"/>. Null with the reason
    /// when it does not, or cannot be read; null with a null reason when there is none.
    /// </summary>
    public static IReadOnlyList<LearnedState>? TryLoad(string path, SnapshotKey key, out string? refusal) => TryLoad(path, key, out refusal, out _);

    /// <summary>
    /// <see cref="TryLoad(string, SnapshotKey, out string?)"/>, and the runs whose frames the states hold, as
    /// saved (null: written without them).
    /// </summary>
    public static IReadOnlyList<LearnedState>? TryLoad(string path, SnapshotKey key, out string? refusal, out string? runs)
    {
        refusal = runs = null;
        if (!File.Exists(path)) return null;
        try
        {
            var info = new FileInfo(path);
            if (info.Length > MaxBytes) throw new InvalidDataException($"it is {info.Length} bytes, more than any snapshot");
            byte[] data = File.ReadAllBytes(path);
            if (data.Length < Magic.Length + 4 + 32) throw new InvalidDataException($"it is {data.Length} bytes, too short to be a snapshot");
            var body = data.AsSpan(0, data.Length - 32);
            if (!SHA256.HashData(body).AsSpan().SequenceEqual(data.AsSpan(data.Length - 32))) throw new InvalidDataException("its checksum does not match (a torn or corrupted file)");
            var r = new Reader(body);
            var magic = r.Bytes(Magic.Length);
            bool tiled = magic.SequenceEqual(MagicTiled);
            if (!tiled && !magic.SequenceEqual(Magic)) throw new InvalidDataException("it is not an EdgeInspector snapshot (or of another format version)");
            string header = Encoding.UTF8.GetString(r.Bytes(r.Count(1 << 20)));
            var saved = SnapshotKey.Parse(header);
            if (key.Mismatch(saved) is { } why)
            {
                refusal = why;
                return null;
            }
            var states = new LearnedState[tiled ? r.Count(64) : 1];
            for (int s = 0; s < states.Length; s++)
            {
                int frames = r.Count(1 << 16);
                var list = new ReservoirFrame[frames];
                for (int i = 0; i < frames; i++)
                {
                    long id = r.Long();
                    var rows = new float[r.Count(1 << 10)][];
                    int keptCount = r.Count(-1, 1 << 20);
                    int patches = keptCount < 0 ? 0 : r.Count(1, 1 << 20);
                    if (keptCount > patches) throw new InvalidDataException($"it keeps {keptCount} of a frame's {patches} patches");
                    for (int v = 0; v < rows.Length; v++)
                    {
                        rows[v] = r.Levels();
                        if (patches > 0 && rows[v].Length % patches != 0) throw new InvalidDataException($"frame {id} holds {rows[v].Length} values in view {v}, not a whole frame of {patches} patches");
                    }
                    if (keptCount < 0)
                    {
                        list[i] = new ReservoirFrame(id, rows);
                        continue;
                    }
                    var kept = new int[keptCount];
                    for (int c = 0; c < keptCount; c++) kept[c] = r.Count(0, patches - 1);
                    list[i] = new ReservoirFrame(id, rows, kept);
                }
                var calibration = r.Floats();
                long quarantined = r.Long();
                states[s] = new LearnedState(list, calibration, quarantined);
            }
            if (!r.AtEnd) throw new InvalidDataException("it has bytes after its content");
            runs = SnapshotKey.Field(header, RunsField);
            return states;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            refusal = e is InvalidDataException ? e.Message : $"it cannot be read: {e.Message}";
            return null;
        }
    }

    /// <summary>Reads the body with bounds checked: a wrong count is an InvalidDataException, never a huge allocation.</summary>
    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _at;

        public readonly bool AtEnd => _at == _data.Length;

        public ReadOnlySpan<byte> Bytes(int n)
        {
            if (n < 0 || n > _data.Length - _at) throw new InvalidDataException("it ends early (a torn or corrupted file)");
            var s = _data.Slice(_at, n);
            _at += n;
            return s;
        }

        public int Count(int max) => Count(0, max);

        public int Count(int min, int max)
        {
            int n = BinaryPrimitives.ReadInt32LittleEndian(Bytes(4));
            if (n < min || n > max) throw new InvalidDataException($"it holds a count of {n}, outside {min}..{max}");
            return n;
        }

        public long Long() => BinaryPrimitives.ReadInt64LittleEndian(Bytes(8));

        /// <summary>int32 values, the float step and the levels: the values back (<see cref="WindowGrid.FromLevels"/>).</summary>
        public float[] Levels()
        {
            int count = Count(0, 1 << 28);
            float step = BinaryPrimitives.ReadSingleLittleEndian(Bytes(4));
            if (!(step > 0) || !float.IsFinite(step)) throw new InvalidDataException($"it holds a step of {step}");
            var levels = MemoryMarshal.Cast<byte, sbyte>(Bytes(count));
            var rows = new float[count];
            WindowGrid.FromLevels(levels, step, rows);
            return rows;
        }

        public float[] Floats()
        {
            int n = Count((_data.Length - _at) / 4);
            var v = new float[n];
            Bytes(n * 4).CopyTo(MemoryMarshal.AsBytes(v.AsSpan()));
            return v;
        }
    }
}
