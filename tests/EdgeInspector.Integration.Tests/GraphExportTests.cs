using System.Text.Json;
using EdgeInspector.Eval;
using Microsoft.ML.OnnxRuntime;
using EdgeInspector.Core.Scoring;
using Xunit.Abstractions;

namespace EdgeInspector.Integration.Tests;

/// <summary>The eval CLI on the graphs: the same accuracy as on the managed kernel, and an export that replays.</summary>
public sealed class GraphExportTests(ITestOutputHelper output)
{
    private static (int Exit, string Log, JsonElement Results) Run(string outDir, params string[] args)
    {
        var writer = new StringWriter();
        var options = EvalOptions.Parse([.. args, "--out", outDir, "--quiet", "--model", Shared.Model("resnet50v2_features.onnx")]);
        int exit = new Evaluator(options, writer).Run();
        return (exit, writer.ToString(), JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json"))).RootElement);
    }

    [Fact]
    public void A_lot_scored_on_the_graphs_matches_the_managed_run_and_its_export_reproduces_the_cpu_outputs()
    {
        using var tmp = new TempFolder();
        string graphs = Path.Combine(tmp.Path, "graphs");
        string[] lot = [Shared.Data("glass_industrial/glass"), "--mode", "stream", "--limit", "40", "--batch", "16"];
        var (exit, log, onnx) = Run(Path.Combine(tmp.Path, "onnx"), [.. lot, "--scoring", "onnx", "--export-graphs", graphs]);
        Assert.Equal(0, exit);
        var (exit2, _, managed) = Run(Path.Combine(tmp.Path, "managed"), [.. lot, "--scoring", "managed"]);
        Assert.Equal(0, exit2);
        var a = onnx.GetProperty("modes").GetProperty("stream");
        var b = managed.GetProperty("modes").GetProperty("stream");
        Assert.Equal(("cpu", "onnx"), (a.GetProperty("provider").GetString(), a.GetProperty("scoring").GetString()));
        Assert.Equal(("cpu", "managed"), (b.GetProperty("provider").GetString(), b.GetProperty("scoring").GetString()));
        foreach (string key in new[] { "image_auroc", "pixel_auroc", "pro" })
        {
            double x = a.GetProperty(key).GetDouble(), y = b.GetProperty(key).GetDouble();
            output.WriteLine($"{key}: onnx {x:F6}, managed {y:F6}");
            Assert.True(Math.Abs(x - y) <= 0.001, $"{key}: onnx {x}, managed {y} (0.1 points allowed)");
        }
        Assert.Contains("graphs exported to", log);

        // The export loads back into ONNX Runtime and gives what the eval's CPU run gave, frame by frame.
        var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(graphs, "manifest.json"))).RootElement;
        int views = manifest.GetProperty("dims").GetArrayLength(), p = manifest.GetProperty("patches").GetInt32();
        var (expected, eShape) = NpyFile.ReadFloats(Path.Combine(graphs, "expected_patches.npy"));
        var (images, _) = NpyFile.ReadFloats(Path.Combine(graphs, "expected_image.npy"));
        int frames = (int)eShape[0];
        Assert.Equal(GraphExport.Frames, frames);
        using var session = new InferenceSession(Path.Combine(graphs, "score.onnx"));
        var (excluded, xShape) = NpyFile.ReadBools(Path.Combine(graphs, "excluded.npy"));
        var (k, _) = NpyFile.ReadLongs(Path.Combine(graphs, "k.npy"));
        int radius = manifest.GetProperty("radius").GetInt32();
        Assert.Equal(EngineOptions.Default.ReservoirWindow, radius); // the default engine searches a window
        var reservoirs = new (float[] Data, long[] Shape)[views];
        var queries = new (float[] Data, long[] Shape)[views];
        var grids = new (float[] Data, long[] Shape)[views];
        for (int v = 0; v < views; v++)
        {
            reservoirs[v] = NpyFile.ReadFloats(Path.Combine(graphs, $"reservoir_{v}.npy"));
            queries[v] = NpyFile.ReadFloats(Path.Combine(graphs, $"query_{v}.npy"));
            grids[v] = NpyFile.ReadFloats(Path.Combine(graphs, $"grid_{v}.npy"));
        }
        double worst = 0;
        for (int f = 0; f < frames; f++)
        {
            var inputs = new Dictionary<string, OrtValue>
            {
                ["excluded"] = OrtValue.CreateTensorValueFromMemory(excluded, xShape),
                ["k"] = OrtValue.CreateTensorValueFromMemory(k, [1]),
            };
            for (int v = 0; v < views; v++)
            {
                long d = queries[v].Shape[2];
                inputs[$"query_{v}"] = OrtValue.CreateTensorValueFromMemory(queries[v].Data[(int)(f * p * d)..(int)((f + 1) * p * d)], [p, d]);
                inputs[$"reservoir_{v}"] = OrtValue.CreateTensorValueFromMemory(reservoirs[v].Data, reservoirs[v].Shape);
                inputs[$"grid_{v}"] = OrtValue.CreateTensorValueFromMemory(grids[v].Data, grids[v].Shape);
            }
            using var run = new RunOptions();
            using var results = session.Run(run, inputs, ["patches", "image"]);
            var patches = results[0].GetTensorDataAsSpan<float>();
            for (int q = 0; q < p; q++) worst = Math.Max(worst, Math.Abs(patches[q] - expected[f * p + q]));
            Assert.Equal(images[f], results[1].GetTensorDataAsSpan<float>()[0], 6);
            foreach (var value in inputs.Values) value.Dispose();
        }
        Assert.True(worst <= 1e-6, $"the replayed graph differs from the export's outputs by {worst:E2}");

        // The store graph writes one slot (slot 1's rows and whole frame into slot 0) and leaves the others as they were.
        using var store = new InferenceSession(Path.Combine(graphs, "store.onnx"));
        var storeInputs = new Dictionary<string, OrtValue> { ["slot"] = OrtValue.CreateTensorValueFromMemory(new long[] { 0 }, [1, 1]) };
        int gh = manifest.GetProperty("grid_height").GetInt32(), gw = manifest.GetProperty("grid_width").GetInt32();
        for (int v = 0; v < views; v++)
        {
            var (data, shape) = reservoirs[v];
            long slot = shape[1] * shape[2];
            storeInputs[$"reservoir_{v}"] = OrtValue.CreateTensorValueFromMemory(data, shape);
            storeInputs[$"rows_{v}"] = OrtValue.CreateTensorValueFromMemory(data[(int)slot..(int)(2 * slot)], [1, shape[1], shape[2]]);
            // Slot 1's frame: its padded grid without the padding. The grid is [H + 2r, blocks, D, B, R]: row
            // y + r, column x + r in block (x + r) / B, the slot innermost.
            var (grid, gShape) = grids[v];
            int blocks = (int)gShape[1], d = (int)gShape[2], block = (int)gShape[3], slots = (int)gShape[4];
            Assert.Equal(manifest.GetProperty("window_block").GetInt32(), block);
            var frame = new float[gh * gw * d];
            for (int y = 0; y < gh; y++)
                for (int x = 0; x < gw; x++)
                    for (int c = 0; c < d; c++)
                        frame[(y * gw + x) * d + c] = grid[(((((y + radius) * blocks) + (x + radius) / block) * d + c) * block + (x + radius) % block) * slots + 1];
            storeInputs[$"grid_{v}"] = OrtValue.CreateTensorValueFromMemory(grid, gShape);
            storeInputs[$"frame_{v}"] = OrtValue.CreateTensorValueFromMemory(frame, [1, gh, gw, d]);
        }
        string[] outputs = [.. Enumerable.Range(0, views).SelectMany(v => new[] { $"updated_{v}", $"updated_grid_{v}" })];
        using (var run = new RunOptions())
        using (var updated = store.Run(run, storeInputs, outputs))
        {
            for (int v = 0; v < views; v++)
            {
                var (data, shape) = reservoirs[v];
                int slot = (int)(shape[1] * shape[2]);
                var u = updated[2 * v].GetTensorDataAsSpan<float>();
                Assert.True(u[..slot].SequenceEqual(data.AsSpan(slot, slot)), $"view {v}: slot 0 does not hold slot 1's rows");
                Assert.True(u[slot..].SequenceEqual(data.AsSpan(slot)), $"view {v}: a slot other than 0 changed");
                var (grid, gShape) = grids[v];
                int slots = (int)gShape[4];
                var ug = updated[2 * v + 1].GetTensorDataAsSpan<float>();
                Assert.Equal(grid.Length, ug.Length);
                int wrong0 = 0, changed = 0;
                for (int e = 0; e < grid.Length; e++)
                {
                    if (e % slots == 0) wrong0 += ug[e] == grid[e + 1] ? 0 : 1;
                    else changed += ug[e] == grid[e] ? 0 : 1;
                }
                Assert.True(wrong0 == 0, $"view {v}: slot 0's grid does not hold slot 1's frame, zero-padded ({wrong0} values differ)");
                Assert.True(changed == 0, $"view {v}: a grid slot other than 0 changed ({changed} values)");
            }
        }
        foreach (var value in storeInputs.Values) value.Dispose();

        // The views graph: the exported taps through views.onnx give the views the eval built from them.
        using var viewsSession = new InferenceSession(Path.Combine(graphs, "views.onnx"));
        var tapInputs = new Dictionary<string, OrtValue>();
        foreach (var tap in manifest.GetProperty("taps").EnumerateArray())
        {
            string name = tap.GetProperty("name").GetString()!;
            var (data, shape) = NpyFile.ReadFloats(Path.Combine(graphs, $"taps_{name}.npy"));
            Assert.Equal(GraphExport.ViewFrames, (int)shape[0]);
            tapInputs[name] = OrtValue.CreateTensorValueFromMemory(data, shape);
        }
        string[] viewNames = [.. Enumerable.Range(0, views).Select(v => $"view_{v}"), "global"];
        double worstView = 0;
        using (var run = new RunOptions())
        using (var built = viewsSession.Run(run, tapInputs, viewNames))
        {
            for (int v = 0; v <= views; v++)
            {
                var (want, _) = NpyFile.ReadFloats(Path.Combine(graphs, v < views ? $"expected_view_{v}.npy" : "expected_global.npy"));
                var got = built[v].GetTensorDataAsSpan<float>();
                Assert.Equal(want.Length, got.Length);
                for (int j = 0; j < want.Length; j++) worstView = Math.Max(worstView, Math.Abs(got[j] - want[j]));
            }
        }
        foreach (var value in tapInputs.Values) value.Dispose();
        Assert.True(worstView <= 1e-6, $"the replayed views graph differs from the export's views by {worstView:E2}");
        Assert.True(manifest.GetProperty("views_managed_max_difference").GetDouble() <= ScoringGraphTests.ViewTolerance);

        // The device check run here, as it runs on a GPU machine: no onnxruntime in Debian's python, so its PyTorch
        // twins of the score and views graphs run on the CPU and are held to the export (setup.sh installs them).
        var (checkExit, report) = DeviceCheck(graphs);
        output.WriteLine(report);
        Assert.True(checkExit == 0, report);
        Assert.Matches(@"the score graph's steps against the \.NET CPU outputs, 4 frames: .* -> PASS", report);
        Assert.Matches(@"the views graph's steps against the \.NET eval's views, 2 frames: .* -> PASS", report);
        Assert.Contains("no check failed", report);
        Assert.Contains("== not proven, and why", report);
    }

    /// <summary>scripts/device_check.py on <paramref name="graphs"/> under Debian's python3 (numpy, torch and onnx from apt).</summary>
    private static (int Exit, string Report) DeviceCheck(string graphs)
    {
        string? script = null;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null && script is null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "scripts", "device_check.py");
            if (File.Exists(candidate)) script = candidate;
        }
        if (script is null) throw new InvalidOperationException($"No scripts/device_check.py above {AppContext.BaseDirectory}.");
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(graphs);
        using var p = System.Diagnostics.Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string report = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, report + stderr.Result);
    }
}

/// <summary>Reads the .npy files the export writes (version 1.0, little-endian, C order).</summary>
internal static class NpyFile
{
    public static (float[] Data, long[] Shape) ReadFloats(string path) => Read<float>(path, "<f4");

    public static (long[] Data, long[] Shape) ReadLongs(string path) => Read<long>(path, "<i8");

    public static (bool[] Data, long[] Shape) ReadBools(string path) => Read<bool>(path, "|b1");

    private static (T[] Data, long[] Shape) Read<T>(string path, string descr) where T : unmanaged
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal("\u0093NUMPY", System.Text.Encoding.Latin1.GetString(bytes, 0, 6));
        int headerLength = BitConverter.ToUInt16(bytes, 8);
        string header = System.Text.Encoding.ASCII.GetString(bytes, 10, headerLength);
        Assert.Contains($"'descr': '{descr}'", header);
        Assert.Equal(0, (10 + headerLength) % 64);
        string dims = header[(header.IndexOf("'shape': (", StringComparison.Ordinal) + 10)..header.IndexOf(')', StringComparison.Ordinal)];
        var shape = dims.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
        var data = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(bytes.AsSpan(10 + headerLength)).ToArray();
        Assert.Equal(shape.Aggregate(1L, (x, y) => x * y), data.Length);
        return (data, shape);
    }
}
