using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EdgeInspector.Cameras;

/// <summary>Settings the GigE source applies through GenICam features at open.</summary>
/// <param name="Camera">Aravis device id, serial number or IP address. An address opens the camera directly (no broadcast discovery).</param>
/// <param name="ExposureUs">ExposureTime, if set.</param>
/// <param name="GainDb">Gain, if set.</param>
/// <param name="PixelFormat">PixelFormat name, if not empty.</param>
/// <param name="Trigger">free_run, software, line, or plc (a software trigger for each trigger the PLC sends).</param>
/// <param name="TriggerLine">TriggerSource for hardware triggering.</param>
/// <param name="FrameRate">AcquisitionFrameRate in free run; the software trigger rate in software mode.</param>
/// <param name="TimeoutMs">Wait for a buffer before counting a timeout.</param>
public sealed record GigeOptions(string Camera, double? ExposureUs, double? GainDb, string PixelFormat, string Trigger, string TriggerLine, double FrameRate, int TimeoutMs);

/// <summary>
/// A GigE Vision camera through libaravis-0.8. At open: connect, apply pixel format, exposure, gain,
/// frame rate and trigger mode through GenICam features, allocate stream buffers of the payload size and
/// start acquisition. Buffers that arrive incomplete are counted and requeued, never delivered. A wait
/// that times out is counted; the camera is then probed with a register read, and if that fails too the
/// camera is declared lost (<see cref="FrameSourceException"/>) so that the pipeline reconnects. With
/// trigger <c>plc</c> it fires one software trigger for each of <paramref name="triggers"/>, and the frame
/// carries that trigger's part id; while no trigger comes, the camera is probed every timeout.
/// </summary>
public sealed class AravisSource(GigeOptions options, SourceCounters counters, ILogger? logger = null, TriggerQueue? triggers = null) : IFrameSource
{
    private const int StreamBuffers = 8;
    private ArvCameraHandle? _camera;
    private ArvStreamHandle? _stream;
    private long _nextTrigger;
    private int _silent;
    private string _description = $"gige {options.Camera}";

    /// <inheritdoc />
    public string Description => _description;

    /// <inheritdoc />
    public Task OpenAsync(CancellationToken cancellationToken) => Task.Run(Open, cancellationToken);

    private void Open()
    {
        var camera = AravisNative.arv_camera_new(options.Camera, out var err);
        if (err != IntPtr.Zero || camera.IsInvalid)
        {
            camera.Dispose();
            AravisNative.Check(err, $"cannot open GigE camera '{options.Camera}'");
            throw new FrameSourceException($"cannot open GigE camera '{options.Camera}': not found");
        }
        _camera = camera;
        string? serial = AravisNative.Text(AravisNative.arv_camera_get_device_serial_number(camera, out var e1), e1);
        string? model = AravisNative.Text(AravisNative.arv_camera_get_model_name(camera, out var e2), e2);
        _description = $"gige {options.Camera} ({model}, serial {serial})";
        if (options.PixelFormat.Length > 0)
        {
            AravisNative.arv_camera_set_pixel_format_from_string(camera, options.PixelFormat, out err);
            AravisNative.Check(err, $"{_description}: PixelFormat '{options.PixelFormat}'");
        }
        if (options.ExposureUs is { } exposure)
        {
            AravisNative.arv_camera_set_exposure_time(camera, exposure, out err);
            AravisNative.Check(err, $"{_description}: ExposureTime {exposure} µs");
        }
        if (options.GainDb is { } gain)
        {
            AravisNative.arv_camera_set_gain(camera, gain, out err);
            AravisNative.Check(err, $"{_description}: Gain {gain} dB");
        }
        AravisNative.arv_camera_set_acquisition_mode(camera, 0 /* ARV_ACQUISITION_MODE_CONTINUOUS */, out err);
        AravisNative.Check(err, $"{_description}: AcquisitionMode Continuous");
        switch (options.Trigger)
        {
            case "free_run":
                AravisNative.arv_camera_clear_triggers(camera, out err);
                AravisNative.Check(err, $"{_description}: TriggerMode Off");
                AravisNative.arv_camera_set_frame_rate(camera, options.FrameRate, out err);
                AravisNative.Check(err, $"{_description}: AcquisitionFrameRate {options.FrameRate}");
                break;
            case "software" or "plc":
                if (options.Trigger == "plc" && triggers is null) throw new FrameSourceException($"{_description}: trigger plc needs the PLC's trigger queue");
                AravisNative.arv_camera_set_trigger(camera, "Software", out err);
                AravisNative.Check(err, $"{_description}: TriggerSource Software");
                break;
            case "line":
                AravisNative.arv_camera_set_trigger(camera, options.TriggerLine, out err);
                AravisNative.Check(err, $"{_description}: TriggerSource {options.TriggerLine}");
                break;
            default:
                throw new FrameSourceException($"{_description}: unknown trigger mode '{options.Trigger}'");
        }
        uint payload = AravisNative.arv_camera_get_payload(camera, out err);
        AravisNative.Check(err, $"{_description}: PayloadSize");
        var stream = AravisNative.arv_camera_create_stream(camera, IntPtr.Zero, IntPtr.Zero, out err);
        if (err != IntPtr.Zero || stream.IsInvalid)
        {
            stream.Dispose();
            AravisNative.Check(err, $"{_description}: cannot create stream");
            throw new FrameSourceException($"{_description}: cannot create stream");
        }
        _stream = stream;
        for (int i = 0; i < StreamBuffers; i++) AravisNative.arv_stream_push_buffer(stream, AravisNative.arv_buffer_new(payload, IntPtr.Zero));
        AravisNative.arv_camera_start_acquisition(camera, out err);
        AravisNative.Check(err, $"{_description}: AcquisitionStart");
        _nextTrigger = Stopwatch.GetTimestamp();
        logger?.LogInformation("Camera {Camera} open: payload {Payload} bytes, trigger {Trigger}", _description, payload, options.Trigger);
    }

    /// <inheritdoc />
    public ValueTask<CapturedFrame?> ReadAsync(CancellationToken cancellationToken)
    {
        if (_stream is null || _camera is null) throw new InvalidOperationException("not opened");
        return new ValueTask<CapturedFrame?>(Task.Run(() => Read(cancellationToken), cancellationToken));
    }

    private CapturedFrame? Read(CancellationToken ct)
    {
        var camera = _camera!;
        var stream = _stream!;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (options.Trigger == "plc")
            {
                string? tag = NextTrigger(camera, ct);
                if (tag is null) continue;
                // A trigger taken from the queue is this source's to answer: whatever happens to its frame,
                // the part gets exactly one verdict. Its frame is waited for even when the service stops
                // (at most the timeout): the camera has been triggered, and the part is on its way out.
                try
                {
                    AravisNative.arv_camera_software_trigger(camera, out var terr);
                    AravisNative.Check(terr, $"{_description}: TriggerSoftware for part {tag} (camera lost?)");
                    return Capture(camera, stream, tag, CancellationToken.None);
                }
                catch (FrameSourceException e) when (e.UnservedPart is null)
                {
                    throw new FrameSourceException(e.Message, e.InnerException, tag);
                }
            }
            if (options.Trigger == "software")
            {
                // The source paces software triggers itself at the configured rate.
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), _nextTrigger);
                if (wait > TimeSpan.Zero) Thread.Sleep(wait);
                _nextTrigger = Math.Max(_nextTrigger + (long)(Stopwatch.Frequency / options.FrameRate), Stopwatch.GetTimestamp() - Stopwatch.Frequency);
                AravisNative.arv_camera_software_trigger(camera, out var terr);
                AravisNative.Check(terr, $"{_description}: TriggerSoftware (camera lost?)");
            }
            if (Capture(camera, stream, null, ct) is { } frame) return frame;
        }
    }

    /// <summary>
    /// The next frame from the stream, tagged with <paramref name="tag"/>. Null when none came whole and the
    /// caller should go on waiting (free run, software or line trigger). For a PLC trigger
    /// (<paramref name="tag"/> set) a frame that comes incomplete or not at all is returned as a failed
    /// capture, so that its part is answered.
    /// </summary>
    private CapturedFrame? Capture(ArvCameraHandle camera, ArvStreamHandle stream, string? tag, CancellationToken ct)
    {
        // Short waits keep the loop responsive to cancellation; the timeout counts the whole wait.
        long started = Stopwatch.GetTimestamp();
        IntPtr buffer = IntPtr.Zero;
        while (buffer == IntPtr.Zero && Stopwatch.GetElapsedTime(started).TotalMilliseconds < options.TimeoutMs)
        {
            ct.ThrowIfCancellationRequested();
            buffer = AravisNative.arv_stream_timeout_pop_buffer(stream, 200_000);
        }
        if (buffer == IntPtr.Zero)
        {
            Interlocked.Increment(ref counters.Timeouts);
            Probe(camera, $"no frame for {options.TimeoutMs} ms");
            if (options.Trigger == "line") return null; // idle line: waiting for parts is normal
            // Free run and software trigger always produce frames: repeated silence means the stream is broken.
            if (++_silent >= 3) throw new FrameSourceException($"{_description}: camera lost: answers but sent no frame for {3 * options.TimeoutMs} ms");
            logger?.LogWarning("Camera {Camera}: no frame within {Timeout} ms", _description, options.TimeoutMs);
            return tag is null ? null : Failed(tag, $"no frame within {options.TimeoutMs} ms of the trigger for part {tag}");
        }
        try
        {
            int status = AravisNative.arv_buffer_get_status(buffer);
            if (status != AravisNative.BufferStatusSuccess)
            {
                Interlocked.Increment(ref counters.Incomplete);
                return tag is null ? null : Failed(tag, $"the frame for part {tag} arrived incomplete (buffer status {status}: missing packets or a size mismatch)");
            }
            IntPtr data = AravisNative.arv_buffer_get_data(buffer, out nuint size);
            int width = AravisNative.arv_buffer_get_image_width(buffer);
            int height = AravisNative.arv_buffer_get_image_height(buffer);
            var layout = (PixelLayout)AravisNative.arv_buffer_get_image_pixel_format(buffer);
            ulong id = AravisNative.arv_buffer_get_frame_id(buffer);
            _silent = 0;
            unsafe
            {
                var span = new ReadOnlySpan<byte>((void*)data, checked((int)size));
                Interlocked.Increment(ref counters.Frames);
                return CapturedFrame.Raw(span, width, height, layout, $"{_description} frame {id}", tag, Stopwatch.GetTimestamp(), DateTimeOffset.UtcNow);
            }
        }
        finally
        {
            AravisNative.arv_stream_push_buffer(stream, buffer);
        }
    }

    private CapturedFrame Failed(string tag, string why) =>
        CapturedFrame.Failed($"{_description} trigger for part {tag}", tag, why, Stopwatch.GetTimestamp(), DateTimeOffset.UtcNow);

    /// <summary>
    /// Waits for the PLC's next trigger; null when none came within the timeout, after making sure the
    /// camera still answers (a trigger must not be the first to find it gone).
    /// </summary>
    private string? NextTrigger(ArvCameraHandle camera, CancellationToken ct)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
        wait.CancelAfter(options.TimeoutMs);
        try
        {
            return triggers!.NextAsync(wait.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            Probe(camera, $"no trigger for {options.TimeoutMs} ms");
            return null;
        }
    }

    /// <summary>
    /// A camera that sends nothing may be waiting for a trigger, or gone, or rebooted. Ask it on the wire (a
    /// feature getter may answer from Aravis' cache): the Control Channel Privilege register (GigE Vision
    /// bootstrap 0x0A00) fails to read when the camera is gone, and reads without our control bits when it
    /// rebooted (and forgot our stream settings) meanwhile.
    /// </summary>
    private void Probe(ArvCameraHandle camera, string why)
    {
        AravisNative.arv_device_read_register(AravisNative.arv_camera_get_device(camera), 0x0A00, out uint ccp, out var perr);
        AravisNative.Check(perr, $"{_description}: {why} and no answer to a register read: camera lost");
        if ((ccp & 0x3) == 0) throw new FrameSourceException($"{_description}: camera lost: it no longer grants us control (it restarted)");
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (_camera is { IsClosed: false } camera && _stream is { IsClosed: false })
        {
            AravisNative.arv_camera_stop_acquisition(camera, out var err);
            if (err != IntPtr.Zero) AravisNative.g_error_free(err); // a lost camera cannot be stopped: nothing to do
        }
        // The stream (and the buffers it owns) goes before the camera that made it.
        _stream?.Dispose();
        _camera?.Dispose();
        _stream = null;
        _camera = null;
        return ValueTask.CompletedTask;
    }
}
