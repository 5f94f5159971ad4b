using System.Globalization;
using BenchmarkDotNet.Running;
using EdgeInspector.Benchmarks;

// Usage: dotnet run -c Release --project tests/EdgeInspector.Benchmarks [-- BenchmarkDotNet args]
var summaries = BenchmarkSwitcher.FromAssembly(typeof(NearestNeighbourBenchmarks).Assembly).Run(args);
foreach (var summary in summaries)
{
    foreach (var report in summary.Reports)
    {
        if (report.ResultStatistics is null) continue;
        var p = report.BenchmarkCase.Parameters;
        string name = report.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo;
        if (p.Items.Any(i => i.Name == "Queries"))
        {
            double flop = 2.0 * Convert.ToDouble(p["Queries"], CultureInfo.InvariantCulture) * Convert.ToDouble(p["References"], CultureInfo.InvariantCulture) * Convert.ToDouble(p["Dim"], CultureInfo.InvariantCulture);
            double gflops = flop / report.ResultStatistics.Mean; // ns -> GFLOP/s
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  GFLOP/s (2*M*N*K / mean): {name,-22} N={p["References"],-5} K={p["Dim"],-5} {gflops,8:0.0}"));
        }
    }
}
