using EdgeInspector.Eval;
using EdgeInspector.Imaging;
using EdgeInspector.Inference.Onnx;

try
{
    var options = EvalOptions.Parse(args);
    return new Evaluator(options, Console.Out).Run();
}
catch (UsageException e)
{
    if (e.Message is { Length: > 0 } && e.Message != new UsageException(null).Message) Console.Error.WriteLine($"edgeinspector-eval: {e.Message}");
    Console.Error.WriteLine(EvalOptions.Usage);
    return 2;
}
catch (Exception e) when (e is BackboneException or ImageDecodeException)
{
    Console.Error.WriteLine($"edgeinspector-eval: {e.Message}");
    return 1;
}
