using System.Text;
using EdgeInspector.Configuration;
using EdgeInspector.Integration.Tests;

namespace EdgeInspector.Service.Tests;

// The file as text: its syntax, encoding, size and nesting, and the values a technician's habits put in it
// (a tab, a shell's ~, a decimal comma, a folder for the file).
public partial class ConfigTests
{
    [Fact]
    public void A_tab_in_the_indentation_is_named_at_its_own_line()
    {
        // YamlDotNet places this error at 1:1, the start of the top-level mapping the tab broke; the loader
        // names the line that holds the tab (line 10 here, after the 8 lines of the valid file and 'engine:').
        using var tmp = new TempFolder();
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Valid(tmp.Path) + "engine:\n\tbatch: 32\n", "site.yaml", tmp.Path));
        var only = Assert.Single(e.Errors);
        Assert.Equal(("(syntax)", 10, 1), (only.Path, only.Line, only.Column));
        Assert.Contains("a tab in the indentation", only.Message);
        // After spaces, the tab's own column.
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Valid(tmp.Path) + "engine:\n  batch: 32\n  \treservoir_keep: 0.1\n", "site.yaml", tmp.Path));
        Assert.Equal((11, 3), (e.Errors[0].Line, e.Errors[0].Column));

        // Before a comment inside a mapping YamlDotNet refuses it too.
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Valid(tmp.Path) + "engine:\n\t# the warm-up\n  batch: 32\n", "site.yaml", tmp.Path));
        Assert.Equal((10, 1), (e.Errors[0].Line, e.Errors[0].Column));

        // A tab where YAML allows one is no error: between a key and its value, and before a comment after a value.
        var s = ConfigLoader.Parse(Valid(tmp.Path) + "engine:\n  batch:\t32\t# the warm-up\n", "site.yaml", tmp.Path);
        Assert.Equal(32, s.Engine.Options.Batch);
    }

    [Fact]
    public void A_file_saved_in_another_encoding_is_refused_where_a_value_holds_the_stray_byte()
    {
        // 'linie_süd' typed in an editor that saves Latin-1: the ü is the single byte 0xFC, which is not UTF-8 and
        // reads as U+FFFD. As the line's name it would publish under another topic than the PLC subscribes to.
        using var tmp = new TempFolder();
        string path = Path.Combine(tmp.Path, "site.yaml");
        byte[] latin1 = System.Text.Encoding.Latin1.GetBytes(Valid(tmp.Path).Replace("line: l1", "line: linie_s\u00fcd"));
        File.WriteAllBytes(path, latin1);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(path));
        var only = Assert.Single(e.Errors);
        Assert.Equal(("(encoding)", 1, 7), (only.Path, only.Line, only.Column));
        Assert.Contains("not UTF-8 text", only.Message);

        // The same byte in a comment is harmless and left alone; saved as UTF-8 the name is read as typed.
        File.WriteAllBytes(path, System.Text.Encoding.Latin1.GetBytes("# Linie S\u00fcd\n" + Valid(tmp.Path)));
        Assert.Equal("l1", ConfigLoader.Load(path).Line);
        File.WriteAllText(path, Valid(tmp.Path).Replace("line: l1", "line: linie_s\u00fcd"));
        Assert.Equal("linie_s\u00fcd", ConfigLoader.Load(path).Line);
    }

    [Fact]
    public void A_shell_s_tilde_or_variable_in_a_path_is_refused_at_the_field()
    {
        // Nothing expands them: '~/logs' would be a folder named '~' beside this file. One error each, at the value.
        using var tmp = new TempFolder();
        string yaml = Valid(tmp.Path).Replace($"      folder: {tmp.Path}", "      folder: ~/images") + "logging:\n  dir: $HOME/logs\n";
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "site.yaml", tmp.Path));
        Assert.Equal(2, e.Errors.Count);
        var folder = e.Errors.Single(x => x.Path == "cameras[0].replay.folder");
        Assert.Equal((6, 15), (folder.Line, folder.Column));
        Assert.Equal("'~/images': ~ is not expanded in this file; write the full path, or one relative to this file's folder", folder.Message);
        var logs = e.Errors.Single(x => x.Path == "logging.dir");
        Assert.Equal((10, 8), (logs.Line, logs.Column));
        Assert.Contains("a $VARIABLE is not expanded", logs.Message);
        Assert.False(Directory.Exists(Path.Combine(tmp.Path, "~")));
    }

    [Fact]
    public void A_decimal_comma_is_refused_with_the_number_it_meant()
    {
        using var tmp = new TempFolder();
        var e = Errors(Valid(tmp.Path) + "verdict:\n  threshold: 3,5\n  unsure_band: 1,000,0\n");
        Assert.Equal("'3,5' is not a number (the decimal separator is a point: 3.5); expected 0..1000 (a calibrated score: about 0 for a typical good part, which must pass)",
            e.Errors.Single(x => x.Path == "verdict.threshold").Message);
        // Not a number with one comma either way: refused without a guess.
        Assert.DoesNotContain("decimal separator", e.Errors.Single(x => x.Path == "verdict.unsure_band").Message);
    }

    [Fact]
    public void A_folder_given_for_the_file_is_named_as_one()
    {
        using var tmp = new TempFolder();
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(tmp.Path));
        Assert.Equal("a folder, not a configuration file; give the file itself", Assert.Single(e.Errors).Message);
        File.WriteAllText(Path.Combine(tmp.Path, "edgeinspector.yaml"), Valid(tmp.Path));
        e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(tmp.Path));
        Assert.Contains($"({Path.Combine(tmp.Path, "edgeinspector.yaml")} is there)", e.Errors[0].Message);
    }

    [Fact]
    public void Deep_or_huge_files_are_refused_before_a_document_is_built()
    {
        using var tmp = new TempFolder();
        // 100,000 nested flow sequences overflowed the stack inside YamlDotNet (a crash no handler catches).
        var deep = Errors("line: " + new string('[', 100_000));
        Assert.Equal("(structure)", Assert.Single(deep.Errors).Path);
        Assert.Contains("nested more than 32", deep.Errors[0].Message);
        Assert.Equal(1, deep.Errors[0].Line);
        var block = string.Concat(Enumerable.Range(0, 40).Select(i => new string(' ', 2 * i) + "k:\n"));
        Assert.Equal(33, Assert.Single(Errors(block).Errors).Line);
        var huge = Errors("# " + new string('x', ConfigLoader.MaxChars));
        Assert.Contains("at most 1,000,000", Assert.Single(huge.Errors).Message);
        // A file within the bounds is read, and the sections it holds are known (hot reload compares them).
        Assert.Equal(["line", "cameras", "model"], ConfigLoader.Parse(Valid(tmp.Path), "site.yaml", tmp.Path).Sections);
    }
}
