using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EdgeInspector.Configuration;

/// <summary>
/// The configuration as text, before its fields are read: its size and nesting bounded before a document is
/// built, a syntax error placed where an editor's mistake is, and the characters a wrong encoding mangled.
/// </summary>
internal static class ConfigText
{
    /// <summary>The document's root; a <see cref="ConfigException"/> for a file too large, too deep, empty or not YAML.</summary>
    public static YamlNode Load(string text, string file)
    {
        var stream = new YamlStream();
        try
        {
            CheckShape(text, file);
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            // Syntax errors stop here: nothing after them can be trusted.
            string message = e.InnerException?.Message ?? e.Message;
            int cut = message.IndexOf("): ", StringComparison.Ordinal);
            if (message.StartsWith('(') && cut > 0) message = message[(cut + 3)..];
            // An editor that indents with a tab is the likeliest cause, and YamlDotNet may place that error at the
            // start of the mapping the tab broke (1:1 for a top-level one): name the line that holds the tab.
            if (message.Contains("tab", StringComparison.OrdinalIgnoreCase) && FirstTabIndent(text, (int)e.Start.Line) is (int line, int column))
            {
                throw new ConfigException([new ConfigError(file, line, column, "(syntax)", "a tab in the indentation; YAML indents with spaces only: replace the tab with spaces")]);
            }
            throw new ConfigException([new ConfigError(file, (int)e.Start.Line, (int)e.Start.Column, "(syntax)", message)]);
        }
        YamlNode? root = stream.Documents.Count > 0 ? stream.Documents[0].RootNode : null;
        return root ?? throw new ConfigException([new ConfigError(file, 0, 0, "(file)", "the file is empty; see config/edgeinspector.yaml for a complete example")]);
    }

    /// <summary>
    /// An error for each value or key that holds U+FFFD. A file saved in another encoding (Latin-1, a Windows
    /// code page) reads with it where a typed 'ü' was: in a comment that is harmless, in a value it would become
    /// another line name or topic, or a path that is not there. The parser knows what is a comment, so only
    /// values and keys are checked.
    /// </summary>
    public static List<ConfigError> Mangled(YamlNode root, string file)
    {
        var errors = new List<ConfigError>();
        foreach (var node in root.AllNodes)
        {
            if (node is YamlScalarNode { Value: { } v } && v.Contains('\uFFFD'))
            {
                errors.Add(new ConfigError(file, (int)node.Start.Line, (int)node.Start.Column, "(encoding)",
                    $"'{v}' holds a character that is not UTF-8 text: the file was saved in another encoding (Latin-1 or a Windows code page?); save it as UTF-8"));
            }
        }
        return errors;
    }

    /// <summary>
    /// The first line (1-based), from <paramref name="fromLine"/> on, whose indentation holds a tab, and the tab's
    /// column. Comment and blank lines count: inside a mapping YamlDotNet refuses a tab before a comment too.
    /// </summary>
    private static (int Line, int Column)? FirstTabIndent(string text, int fromLine)
    {
        int line = 1;
        for (int start = 0; start < text.Length; line++)
        {
            int end = text.IndexOf('\n', start);
            if (end < 0) end = text.Length;
            for (int i = start; line >= fromLine && i < end && text[i] is (' ' or '\t'); i++)
            {
                if (text[i] == '\t') return (line, i - start + 1);
            }
            start = end + 1;
        }
        return null;
    }

    /// <summary>
    /// Bounds the size and nesting before any document is built. YamlDotNet builds nodes recursively, so a
    /// deeply nested file (a stray run of '[' saved over the live file) would overflow the stack and kill
    /// the process, which no handler can catch; its event parser is iterative and walks it safely.
    /// </summary>
    private static void CheckShape(string text, string file)
    {
        if (text.Length > ConfigLoader.MaxChars)
        {
            throw new ConfigException([new ConfigError(file, 0, 0, "(file)", $"{text.Length:N0} characters; a configuration holds at most {ConfigLoader.MaxChars:N0} (is this the right file?)")]);
        }
        var parser = new Parser(new StringReader(text));
        int depth = 0;
        while (parser.MoveNext())
        {
            switch (parser.Current)
            {
                case YamlDotNet.Core.Events.SequenceStart or YamlDotNet.Core.Events.MappingStart:
                    if (++depth > ConfigLoader.MaxDepth)
                    {
                        var at = parser.Current.Start;
                        throw new ConfigException([new ConfigError(file, (int)at.Line, (int)at.Column, "(structure)", $"lists and mappings nested more than {ConfigLoader.MaxDepth} deep; the configuration needs at most 4 (a damaged or wrong file?)")]);
                    }
                    break;
                case YamlDotNet.Core.Events.SequenceEnd or YamlDotNet.Core.Events.MappingEnd:
                    depth--;
                    break;
            }
        }
    }
}
