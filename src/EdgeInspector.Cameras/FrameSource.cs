using System.Buffers;

namespace EdgeInspector.Cameras;

/// <summary>Pixel layouts a raw frame can arrive in (the GenICam PFNC values GigE cameras send).</summary>
public enum PixelLayout : uint
{
    /// <summary>8-bit grey.</summary>
    Mono8 = 0x01080001,
    /// <summary>Bayer GR 8-bit.</summary>
    BayerGR8 = 0x01080008,
    /// <summary>Bayer RG 8-bit.</summary>
    BayerRG8 = 0x01080009,
    /// <summary>Bayer GB 8-bit.</summary>
    BayerGB8 = 0x0108000A,
    /// <summary>Bayer BG 8-bit.</summary>
    BayerBG8 = 0x0108000B,
    /// <summary>8-bit RGB, packed.</summary>
    Rgb8 = 0x02180014,
    /// <summary>8-bit BGR, packed (OpenCV's order).</summary>
    Bgr8 = 0x02180015,
}

/// <summary>
/// One frame as a source delivers it: either an encoded file (replay) or raw pixels in a pooled buffer.
/// Decoding happens later in the pipeline, so a corrupt frame becomes an <c>error</c> verdict for that
/// frame instead of an exception in the camera loop. Dispose returns the pooled buffer.
/// </summary>
public sealed class CapturedFrame : IDisposable
{
    private byte[]? _pooled;

    private CapturedFrame(DateTimeOffset captureUtc, long captureTimestamp, string? partId, string origin)
    {
        CaptureUtc = captureUtc;
        CaptureTimestamp = captureTimestamp;
        PartId = partId;
        Origin = origin;
    }

    /// <summary>An encoded image (PNG, JPEG, …) read from <paramref name="origin"/>.</summary>
    public static CapturedFrame Encoded(byte[] bytes, string origin, string? partId, long captureTimestamp, DateTimeOffset captureUtc)
        => new(captureUtc, captureTimestamp, partId, origin) { EncodedBytes = bytes };

    /// <summary>
    /// A capture that failed for a part that must still be answered (a triggered frame that arrived
    /// incomplete, or not at all): it travels as a frame, and is answered <c>error</c> with <paramref name="error"/>.
    /// </summary>
    public static CapturedFrame Failed(string origin, string? partId, string error, long captureTimestamp, DateTimeOffset captureUtc)
        => new(captureUtc, captureTimestamp, partId, origin) { CaptureError = error };

    /// <summary>Raw pixels copied from <paramref name="source"/> into a pooled buffer.</summary>
    public static CapturedFrame Raw(ReadOnlySpan<byte> source, int width, int height, PixelLayout layout, string origin, string? partId, long captureTimestamp, DateTimeOffset captureUtc)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(source.Length);
        source.CopyTo(buffer);
        return new(captureUtc, captureTimestamp, partId, origin) { _pooled = buffer, RawLength = source.Length, Width = width, Height = height, Layout = layout };
    }

    /// <summary>Wall-clock capture time (UTC), for the verdict's timestamp.</summary>
    public DateTimeOffset CaptureUtc { get; }

    /// <summary>Monotonic capture time (<see cref="System.Diagnostics.Stopwatch"/> ticks): deadlines and latency.</summary>
    public long CaptureTimestamp { get; }

    /// <summary>The part id when the line provides one (replay: the file name).</summary>
    public string? PartId { get; }

    /// <summary>Where the frame came from (file path, camera and its frame id), for error messages.</summary>
    public string Origin { get; }

    /// <summary>Why no image came with this frame (<see cref="Failed"/>); null for a frame with pixels.</summary>
    public string? CaptureError { get; private init; }

    /// <summary>The encoded file, for replayed frames.</summary>
    public byte[]? EncodedBytes { get; private init; }

    /// <summary>Raw pixels, for camera frames.</summary>
    public ReadOnlySpan<byte> RawPixels => _pooled is null ? default : _pooled.AsSpan(0, RawLength);

    private int RawLength { get; init; }

    /// <summary>Raw frame width.</summary>
    public int Width { get; private init; }

    /// <summary>Raw frame height.</summary>
    public int Height { get; private init; }

    /// <summary>Raw pixel layout; also reported raw when unknown so that the error names it.</summary>
    public PixelLayout Layout { get; private init; }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_pooled is { } b)
        {
            _pooled = null;
            ArrayPool<byte>.Shared.Return(b);
        }
    }
}

/// <summary>Counters every source keeps, published on the status topic.</summary>
public sealed class SourceCounters
{
    /// <summary>Frames delivered.</summary>
    public long Frames;
    /// <summary>Waits for a frame that ran past the timeout.</summary>
    public long Timeouts;
    /// <summary>Buffers that arrived incomplete (missing packets, size mismatch, …) and were not delivered.</summary>
    public long Incomplete;
    /// <summary>Times the source was lost and opened again.</summary>
    public long Reconnects;
}

/// <summary>Raised when a source is lost or cannot be opened: the pipeline reconnects with back-off.</summary>
public sealed class FrameSourceException(string message, Exception? inner = null, string? unservedPart = null) : Exception(message, inner)
{
    /// <summary>The part of a PLC trigger the source had taken and could not serve: the pipeline answers it.</summary>
    public string? UnservedPart { get; } = unservedPart;
}

/// <summary>
/// A camera, or anything that behaves like one. The contract: <see cref="OpenAsync"/> connects (throws
/// <see cref="FrameSourceException"/> when it cannot); <see cref="ReadAsync"/> returns the next frame,
/// null at the end of a finite source, and throws <see cref="FrameSourceException"/> when the source is
/// lost. The pipeline owns reconnection: it disposes the source and opens a new one with back-off.
/// </summary>
public interface IFrameSource : IAsyncDisposable
{
    /// <summary>What it is, for logs ("gige 127.0.0.1 (serial EI001)").</summary>
    string Description { get; }

    /// <summary>
    /// True when frames come on the source's own clock (a camera, a paced replay): when the pipeline
    /// is full they are dropped and answered, as on a line. False for an unpaced replay, which waits
    /// for the pipeline instead, so that it runs at the pipeline's own maximum rate.
    /// </summary>
    bool IsRealTime => true;

    /// <summary>Connects and starts acquisition.</summary>
    Task OpenAsync(CancellationToken cancellationToken);

    /// <summary>The next frame; null when a finite source is exhausted.</summary>
    ValueTask<CapturedFrame?> ReadAsync(CancellationToken cancellationToken);
}
