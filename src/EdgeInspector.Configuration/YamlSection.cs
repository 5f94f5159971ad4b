using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace EdgeInspector.Configuration;

/// <summary>One problem in a configuration file, located for the technician who has to fix it.</summary>
/// <param name="File">The file.</param>
/// <param name="Line">1-based line (0 when the whole file is at fault).</param>
/// <param name="Column">1-based column.</param>
/// <param name="Path">The field's path, as in <c>cameras[0].gige.exposure_us</c>.</param>
/// <param name="Message">What is wrong and what is allowed.</param>
public sealed record ConfigError(string File, int Line, int Column, string Path, string Message)
{
    /// <inheritdoc />
    public override string ToString() => Line > 0 ? $"{File}:{Line}:{Column}: {Path}: {Message}" : $"{File}: {Path}: {Message}";
}

/// <summary>Thrown with every problem found, not just the first.</summary>
public sealed class ConfigException(IReadOnlyList<ConfigError> errors)
    : Exception($"{errors.Count} configuration error(s):{Environment.NewLine}" + string.Join(Environment.NewLine, errors))
{
    /// <summary>Every problem found.</summary>
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}

/// <summary>
/// A mapping in the YAML being read: typed getters that record an error (with line, column and path)
/// instead of throwing, so that one pass reports every problem, and that flag keys nobody asked for
/// (a misspelt key silently ignored is the worst kind of 3 a.m. surprise).
/// </summary>
/// <remarks>
/// Given a <see cref="SchemaNode"/> instead of a document, every getter also records the field it
/// reads (type, default, range, allowed values), and a list or named mapping yields one entry to
/// describe: so the JSON Schema an editor checks against comes from the very calls that validate.
/// </remarks>
internal sealed class YamlSection
{
    private readonly List<ConfigError> _errors;
    private readonly string _file;
    private readonly YamlMappingNode? _node;
    private readonly YamlNode? _anchor;
    private readonly HashSet<string> _known = [];
    private readonly SchemaNode? _schema;

    public YamlSection(List<ConfigError> errors, string file, YamlNode? node, string path, YamlNode? anchor = null, SchemaNode? schema = null)
    {
        _errors = errors;
        _file = file;
        _schema = schema;
        Path = path;
        _anchor = node ?? anchor;
        if (node is YamlMappingNode map) _node = map;
        else if (node is not null && !IsNull(node)) Error(node, path, "expected a mapping of fields (key: value)");
    }

    public string Path { get; }

    public bool Present => _node is not null;

    private string Sub(string key) => Path.Length == 0 ? key : $"{Path}.{key}";

    private static bool IsNull(YamlNode node) => node is YamlScalarNode { Value: null or "" or "~" or "null" } s && s.Style == YamlDotNet.Core.ScalarStyle.Plain;

    public void Error(YamlNode? node, string path, string message)
    {
        var mark = (node ?? _anchor)?.Start;
        _errors.Add(new ConfigError(_file, mark is { } m ? (int)m.Line : 0, mark is { } c ? (int)c.Column : 0, path, message));
    }

    /// <summary>An error about a field already read, placed at its value (at the section when the field is left out).</summary>
    public void FieldError(string key, string message) => Error(Get(key), Sub(key), message);

    private YamlNode? Get(string key)
    {
        _known.Add(key);
        if (_node is null) return null;
        foreach (var (k, v) in _node.Children)
        {
            if (k is YamlScalarNode s && s.Value == key) return IsNull(v) ? null : v;
        }
        return null;
    }

    private string? Scalar(string key, out YamlNode? node)
    {
        node = Get(key);
        if (node is null) return null;
        if (node is YamlScalarNode s) return s.Value;
        Error(node, Sub(key), "expected a single value, found a " + (node is YamlSequenceNode ? "list" : "mapping"));
        return null;
    }

    public string Str(string key, string fallback, params string[] allowed)
    {
        _schema?.Add(key, new SchemaField("string") { Default = fallback, Enum = allowed.Length > 0 ? allowed : null });
        string? v = Scalar(key, out var node);
        if (v is null) return fallback;
        if (allowed.Length > 0 && !allowed.Contains(v))
        {
            Error(node, Sub(key), $"'{v}' is not allowed; expected one of: {string.Join(", ", allowed)}");
            return fallback;
        }
        return v;
    }

    public string? OptStr(string key)
    {
        _schema?.Add(key, new SchemaField("string"));
        return Scalar(key, out _);
    }

    /// <summary>Whether the file sets <paramref name="key"/>: for fields that are refused, never read (they are not in the schema).</summary>
    public bool Has(string key) => Get(key) is not null;

    public int Int(string key, int fallback, int min, int max) => (int)Long(key, fallback, min, max);

    public long Long(string key, long fallback, long min, long max)
    {
        _schema?.Add(key, new SchemaField("integer") { Default = fallback, Min = min, Max = max });
        string? v = Scalar(key, out var node);
        if (v is null) return fallback;
        if (!long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out long x))
        {
            Error(node, Sub(key), $"'{v}' is not a whole number; expected {min}..{max}");
            return fallback;
        }
        if (x < min || x > max)
        {
            Error(node, Sub(key), $"{x} is out of range; expected {min}..{max}");
            return fallback;
        }
        return x;
    }

    /// <summary>A number from <paramref name="min"/> to <paramref name="max"/>; <paramref name="note"/>, if given, says
    /// after the range what the number is, when the range alone would not tell a technician why.</summary>
    public double Num(string key, double fallback, double min, double max, string? note = null)
    {
        _schema?.Add(key, new SchemaField("number") { Default = double.IsNaN(fallback) ? null : fallback, Min = min, Max = max });
        string? v = Scalar(key, out var node);
        if (v is null) return fallback;
        if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) || !double.IsFinite(x))
        {
            // A decimal comma is how much of the world writes 3.5; say so rather than only refuse it.
            string comma = v.Count(c => c == ',') == 1 && double.TryParse(v.Replace(',', '.'), NumberStyles.Float, CultureInfo.InvariantCulture, out double meant)
                ? $" (the decimal separator is a point: {meant.ToString(CultureInfo.InvariantCulture)})" : "";
            Error(node, Sub(key), $"'{v}' is not a number{comma}; expected {min.ToString(CultureInfo.InvariantCulture)}..{max.ToString(CultureInfo.InvariantCulture)}{About(note)}");
            return fallback;
        }
        if (x < min || x > max)
        {
            Error(node, Sub(key), $"{v} is out of range; expected {min.ToString(CultureInfo.InvariantCulture)}..{max.ToString(CultureInfo.InvariantCulture)}{About(note)}");
            return fallback;
        }
        return x;
    }

    private static string About(string? note) => note is null ? "" : $" ({note})";

    public double? OptNum(string key, double min, double max, string? note = null)
    {
        _schema?.Add(key, new SchemaField("number") { Min = min, Max = max });
        if (Get(key) is null) return null;
        return Num(key, double.NaN, min, max, note) is var x && double.IsNaN(x) ? null : x;
    }

    public bool Bool(string key, bool fallback)
    {
        _schema?.Add(key, new SchemaField("boolean") { Default = fallback });
        string? v = Scalar(key, out var node);
        if (v is null) return fallback;
        switch (v.ToLowerInvariant())
        {
            case "true" or "yes" or "on": return true;
            case "false" or "no" or "off": return false;
            default:
                Error(node, Sub(key), $"'{v}' is not allowed; expected true or false");
                return fallback;
        }
    }

    public YamlSection Child(string key) => new(_errors, _file, Get(key), Sub(key), _anchor, _schema?.Object(key));

    public IReadOnlyList<string> StrList(string key, IReadOnlyList<string> fallback)
    {
        _schema?.Add(key, new SchemaField("array") { Items = "string", Default = fallback.ToArray() }, keepIfPresent: true);
        var node = Get(key);
        if (node is null) return fallback;
        if (node is not YamlSequenceNode seq)
        {
            Error(node, Sub(key), "expected a list, as in [a, b]");
            return fallback;
        }
        var list = new List<string>();
        for (int i = 0; i < seq.Children.Count; i++)
        {
            if (seq.Children[i] is YamlScalarNode { Value: { } s }) list.Add(s);
            else Error(seq.Children[i], $"{Sub(key)}[{i}]", "expected a single value");
        }
        return list;
    }

    public IReadOnlyList<double> NumList(string key, IReadOnlyList<double> fallback, int count)
    {
        _schema?.Add(key, new SchemaField("array") { Items = "number", Count = count, Default = fallback.ToArray() });
        var raw = StrList(key, []);
        if (raw.Count == 0) return fallback;
        var node = Get(key);
        var list = new List<double>();
        foreach (string s in raw)
        {
            if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && double.IsFinite(x)) list.Add(x);
            else Error(node, Sub(key), $"'{s}' is not a number");
        }
        if (list.Count != count)
        {
            Error(node, Sub(key), $"expected {count} numbers, found {raw.Count}");
            return fallback;
        }
        return list;
    }

    public IReadOnlyList<YamlSection> List(string key)
    {
        if (_schema is not null) return [new YamlSection(_errors, _file, null, $"{Sub(key)}[]", _anchor, _schema.ListOfObjects(key))];
        var node = Get(key);
        if (node is null) return [];
        if (node is not YamlSequenceNode seq)
        {
            Error(node, Sub(key), "expected a list of entries (each starting with '- ')");
            return [];
        }
        var list = new List<YamlSection>();
        for (int i = 0; i < seq.Children.Count; i++) list.Add(new YamlSection(_errors, _file, seq.Children[i], $"{Sub(key)}[{i}]"));
        return list;
    }

    /// <summary>Named entries of a mapping whose keys are names (recipes).</summary>
    public IReadOnlyList<(string Name, YamlSection Section)> Named(string key)
    {
        if (_schema is not null) return [("*", new YamlSection(_errors, _file, null, $"{Sub(key)}.*", _anchor, _schema.Map(key)))];
        var node = Get(key);
        if (node is null) return [];
        if (node is not YamlMappingNode map)
        {
            Error(node, Sub(key), "expected a mapping of names to settings");
            return [];
        }
        var list = new List<(string, YamlSection)>();
        foreach (var (k, v) in map.Children)
        {
            string name = (k as YamlScalarNode)?.Value ?? "";
            list.Add((name, new YamlSection(_errors, _file, v, $"{Sub(key)}.{name}")));
        }
        return list;
    }

    /// <summary>Reports keys present in the file that no getter asked for (typos, misplaced fields).</summary>
    public void RejectUnknown(IReadOnlyDictionary<string, string>? removed = null)
    {
        if (_node is null) return;
        foreach (var (k, _) in _node.Children)
        {
            string key = (k as YamlScalarNode)?.Value ?? "?";
            if (_known.Contains(key)) continue;
            if (removed is not null && removed.TryGetValue(key, out string? why))
            {
                Error(k, Sub(key), $"this field was removed ({why}); delete the line");
                continue;
            }
            string? near = _known.OrderBy(c => Distance(c, key)).FirstOrDefault();
            string hint = near is not null && Distance(near, key) <= 2 ? $" (did you mean '{near}'?)" : "";
            Error(k, Sub(key), $"unknown field{hint}; fields allowed here: {string.Join(", ", _known.Order())}");
        }
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }
        }
        return d[a.Length, b.Length];
    }
}
