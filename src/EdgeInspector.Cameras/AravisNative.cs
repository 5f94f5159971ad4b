using System.Runtime.InteropServices;

namespace EdgeInspector.Cameras;

/// <summary>
/// An owned reference to a GObject (an ArvCamera, an ArvStream): released with <c>g_object_unref</c>
/// exactly once, when disposed or, if it never is, when collected; a call in flight keeps it alive.
/// </summary>
internal abstract class GObjectHandle() : SafeHandle(IntPtr.Zero, ownsHandle: true)
{
    /// <inheritdoc />
    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        AravisNative.g_object_unref(handle);
        return true;
    }
}

/// <summary>An ArvCamera.</summary>
internal sealed class ArvCameraHandle : GObjectHandle;

/// <summary>An ArvStream (it owns the buffers pushed to it, and frees them with itself).</summary>
internal sealed class ArvStreamHandle : GObjectHandle;

/// <summary>
/// The part of libaravis-0.8's C API the GigE source uses. Aravis has no .NET binding; these signatures
/// follow arvcamera.h, arvstream.h and arvbuffer.h of Aravis 0.8 (every call that can fail takes a
/// GError**; the camera and the stream are owned through <see cref="GObjectHandle"/>s; a buffer belongs to
/// the stream once pushed, and the device is borrowed from the camera).
/// </summary>
internal static partial class AravisNative
{
    private const string Aravis = "libaravis-0.8.so.0";
    private const string GObject = "libgobject-2.0.so.0";
    private const string GLib = "libglib-2.0.so.0";

    /// <summary>ARV_BUFFER_STATUS_SUCCESS; every other status is an incomplete or failed buffer.</summary>
    public const int BufferStatusSuccess = 0;

    [LibraryImport(Aravis, StringMarshalling = StringMarshalling.Utf8)]
    public static partial ArvCameraHandle arv_camera_new(string? name, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial IntPtr arv_camera_get_device_serial_number(ArvCameraHandle camera, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial IntPtr arv_camera_get_model_name(ArvCameraHandle camera, out IntPtr error);

    [LibraryImport(Aravis, StringMarshalling = StringMarshalling.Utf8)]
    public static partial void arv_camera_set_pixel_format_from_string(ArvCameraHandle camera, string format, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial void arv_camera_set_exposure_time(ArvCameraHandle camera, double microseconds, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial void arv_camera_set_gain(ArvCameraHandle camera, double gain, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial void arv_camera_set_frame_rate(ArvCameraHandle camera, double rate, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial void arv_camera_set_acquisition_mode(ArvCameraHandle camera, int mode, out IntPtr error);

    [LibraryImport(Aravis, StringMarshalling = StringMarshalling.Utf8)]
    public static partial void arv_camera_set_trigger(ArvCameraHandle camera, string source, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial void arv_camera_clear_triggers(ArvCameraHandle camera, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial void arv_camera_software_trigger(ArvCameraHandle camera, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial uint arv_camera_get_payload(ArvCameraHandle camera, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial ArvStreamHandle arv_camera_create_stream(ArvCameraHandle camera, IntPtr callback, IntPtr userData, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial void arv_camera_start_acquisition(ArvCameraHandle camera, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial void arv_camera_stop_acquisition(ArvCameraHandle camera, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial IntPtr arv_camera_get_device(ArvCameraHandle camera);

    /// <summary>A raw GVCP register read: never served from the GenICam cache, so it proves the camera answers.</summary>
    [LibraryImport(Aravis)]
    [return: MarshalAs(UnmanagedType.I4)]
    public static partial bool arv_device_read_register(IntPtr device, ulong address, out uint value, out IntPtr error);

    [LibraryImport(Aravis)]
    public static partial IntPtr arv_buffer_new(nuint size, IntPtr preallocated);

    [LibraryImport(Aravis)]
    public static partial void arv_stream_push_buffer(ArvStreamHandle stream, IntPtr buffer);

    [LibraryImport(Aravis)]
    public static partial IntPtr arv_stream_timeout_pop_buffer(ArvStreamHandle stream, ulong timeoutMicroseconds);

    [LibraryImport(Aravis)]
    public static partial int arv_buffer_get_status(IntPtr buffer);

    [LibraryImport(Aravis)]
    public static partial IntPtr arv_buffer_get_data(IntPtr buffer, out nuint size);

    [LibraryImport(Aravis)]
    public static partial int arv_buffer_get_image_width(IntPtr buffer);

    [LibraryImport(Aravis)]
    public static partial int arv_buffer_get_image_height(IntPtr buffer);

    [LibraryImport(Aravis)]
    public static partial uint arv_buffer_get_image_pixel_format(IntPtr buffer);

    [LibraryImport(Aravis)]
    public static partial ulong arv_buffer_get_frame_id(IntPtr buffer);

    [LibraryImport(GObject)]
    public static partial void g_object_unref(IntPtr obj);

    [LibraryImport(GLib)]
    public static partial void g_error_free(IntPtr error);

    /// <summary>Throws with the GError's message (and frees it) when <paramref name="error"/> is set.</summary>
    public static void Check(IntPtr error, string what)
    {
        if (error == IntPtr.Zero) return;
        // struct GError { GQuark domain; gint code; gchar *message; }: the message follows two 32-bit fields.
        string message = Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(error, 8)) ?? "unknown error";
        g_error_free(error);
        throw new FrameSourceException($"{what}: {message}");
    }

    /// <summary>A string a getter returns (owned by Aravis), or null on error (freed).</summary>
    public static string? Text(IntPtr value, IntPtr error)
    {
        if (error != IntPtr.Zero)
        {
            g_error_free(error);
            return null;
        }
        return Marshal.PtrToStringUTF8(value);
    }
}
