using System.Diagnostics;
using OpenCvSharp;

namespace EdgeInspector.Cameras;

/// <summary>
/// USB cameras (V4L2), video files and RTSP streams through OpenCV's VideoCapture. A number opens that
/// USB index, anything else is passed to VideoCapture as a file name or URL. A read that returns no
/// frame on a live source means the source was lost; on a file it means the end.
/// </summary>
public sealed class VideoCaptureSource(string uri) : IFrameSource
{
    private VideoCapture? _capture;
    private readonly Mat _frame = new();
    private readonly bool _isFile = File.Exists(uri);

    /// <inheritdoc />
    public string Description => $"video {uri}";

    /// <inheritdoc />
    public Task OpenAsync(CancellationToken cancellationToken) => Task.Run(() =>
    {
        _capture = int.TryParse(uri, out int index) ? new VideoCapture(index, VideoCaptureAPIs.V4L2) : new VideoCapture(uri);
        if (!_capture.IsOpened()) throw new FrameSourceException($"cannot open video source '{uri}' (no such device, file or stream, or no permission)");
    }, cancellationToken);

    /// <inheritdoc />
    public ValueTask<CapturedFrame?> ReadAsync(CancellationToken cancellationToken)
    {
        var capture = _capture ?? throw new InvalidOperationException("not opened");
        return new ValueTask<CapturedFrame?>(Task.Run(() =>
        {
            if (!capture.Read(_frame) || _frame.Empty())
            {
                if (_isFile) return null;
                throw new FrameSourceException($"video source '{uri}' delivered no frame (disconnected?)");
            }
            using var bgr = _frame.Channels() == 3 ? _frame.Clone() : ToBgr(_frame);
            long bytes = bgr.Total() * bgr.ElemSize();
            unsafe
            {
                var span = new ReadOnlySpan<byte>((void*)bgr.Data, checked((int)bytes));
                return CapturedFrame.Raw(span, bgr.Width, bgr.Height, PixelLayout.Bgr8, $"{uri} frame {capture.PosFrames}", null, Stopwatch.GetTimestamp(), DateTimeOffset.UtcNow);
            }
        }, cancellationToken));
    }

    private static Mat ToBgr(Mat m)
    {
        var bgr = new Mat();
        Cv2.CvtColor(m, bgr, m.Channels() == 1 ? ColorConversionCodes.GRAY2BGR : ColorConversionCodes.BGRA2BGR);
        return bgr;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _capture?.Release();
        _capture?.Dispose();
        _frame.Dispose();
        return ValueTask.CompletedTask;
    }
}
