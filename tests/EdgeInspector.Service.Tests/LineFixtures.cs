using System.Diagnostics;

namespace EdgeInspector.Service.Tests;

/// <summary>A real mosquitto on a free loopback port; can be killed and started again on the same port.</summary>
internal sealed class Mosquitto : IDisposable
{
    private readonly string _conf;
    private ChildProcess? _proc;

    /// <summary>
    /// A broker that requires TLS (a CA made for the test signs its certificate for 127.0.0.1) and a
    /// user name and password (mosquitto_passwd).
    /// </summary>
    public static Mosquitto Secured(string dir, string user, string password, out string caFile)
    {
        var m = new Mosquitto(dir);
        caFile = Path.Combine(dir, "ca.crt");
        string Run(string file, params string[] args)
        {
            using var p = new ChildProcess(file, args);
            p.WaitForExitAsync(CancellationToken.None).Wait(TimeSpan.FromSeconds(60));
            if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {p.Output}");
            return p.Output;
        }
        string ca = caFile, caKey = Path.Combine(dir, "ca.key"), key = Path.Combine(dir, "server.key"), csr = Path.Combine(dir, "server.csr"), crt = Path.Combine(dir, "server.crt"), ext = Path.Combine(dir, "san.ext");
        Run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", caKey, "-out", ca, "-subj", "/CN=EdgeInspector test CA");
        Run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1");
        File.WriteAllText(ext, "subjectAltName=IP:127.0.0.1\n");
        Run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext);
        string passwords = Path.Combine(dir, "passwords");
        Run("mosquitto_passwd", "-b", "-c", passwords, user, password);
        // mosquitto started as root drops to its own user: let it read these test-only files.
        foreach (string f in new[] { key, crt, ca, passwords }) File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.WriteAllText(m._conf, $"listener {m.Port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\npersistence false\nlog_dest stdout\n");
        return m;
    }

    public Mosquitto(string dir)
    {
        Port = Ports.Free();
        _conf = Path.Combine(dir, "mosquitto.conf");
        // Persistence with a 1 s autosave: a subscriber's session (its subscriptions and the QoS 1
        // messages queued for it) survives even a SIGKILL of the broker, as on a real installation.
        string data = Path.Combine(dir, "mosquitto-data") + "/";
        Directory.CreateDirectory(data);
        File.WriteAllText(_conf, $"listener {Port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {data}\nautosave_interval 1\nlog_dest stdout\n");
    }

    public int Port { get; }

    public async Task StartAsync()
    {
        _proc = new ChildProcess("mosquitto", ["-c", _conf]);
        try
        {
            await Ports.WaitListening(Port, TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException e)
        {
            throw new InvalidOperationException($"mosquitto did not start: {e.Message}\n{_proc.Output}");
        }
    }

    public void Kill() => _proc?.Kill();

    public void Dispose() => _proc?.Dispose();
}

/// <summary>The Aravis GigE Vision fake camera on 127.0.0.1 (never discovery: opened by address).</summary>
internal sealed class FakeCamera : IDisposable
{
    private ChildProcess? _proc;

    public string Serial { get; } = "EI" + Random.Shared.Next(10000, 99999);

    public async Task StartAsync()
    {
        _proc = new ChildProcess("arv-fake-gv-camera-0.8", ["-i", "127.0.0.1", "-s", Serial]);
        // It answers GVCP on UDP 3956 at once; give it a moment to bind.
        await Task.Delay(500);
        if (_proc.HasExited) throw new InvalidOperationException($"arv-fake-gv-camera-0.8 exited: {_proc.Output}");
    }

    public void Kill() => _proc?.Kill();

    /// <summary>Freezes the camera (SIGSTOP): it stops answering without closing anything, as a hung camera does.</summary>
    public void Pause() => Signal("STOP");

    /// <summary>Lets a paused camera run again (SIGCONT).</summary>
    public void Resume() => Signal("CONT");

    private void Signal(string signal)
    {
        using var kill = System.Diagnostics.Process.Start("kill", [$"-{signal}", _proc!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public void Dispose()
    {
        if (_proc is { HasExited: false }) Resume(); // a stopped process cannot be killed cleanly otherwise
        _proc?.Dispose();
    }
}

/// <summary>
/// A line with one GigE camera: a real broker, the fake camera and the service on both, and a probe on
/// the camera's topics (<c>edgeinspector/testline/gige1/#</c>). Disposed in the reverse order of start.
/// </summary>
internal sealed class GigeLine : IAsyncDisposable
{
    private GigeLine(Integration.Tests.TempFolder folder, Mosquitto broker, FakeCamera camera, Probe probe, ServiceRun service) =>
        (Folder, Broker, Camera, Probe, Service) = (folder, broker, camera, probe, service);

    public Integration.Tests.TempFolder Folder { get; }
    public Mosquitto Broker { get; }
    public FakeCamera Camera { get; }
    public Probe Probe { get; }
    public ServiceRun Service { get; }

    /// <summary>The camera's state on the last status message.</summary>
    public string? CameraState => Probe.On("/status").LastOrDefault()?.Json.GetProperty("camera_state").GetString();

    /// <summary>Starts the line with the camera's <c>trigger</c> mode.</summary>
    public static async Task<GigeLine> StartAsync(string trigger)
    {
        var tmp = new Integration.Tests.TempFolder();
        var broker = new Mosquitto(tmp.Path);
        await broker.StartAsync();
        var camera = new FakeCamera();
        await camera.StartAsync();
        var probe = new Probe(broker.Port, "edgeinspector/testline/gige1/#");
        await probe.ConnectAsync();
        var service = new ServiceRun(tmp.Path, Yaml.Config(Yaml.Gige(trigger), Yaml.Broker(broker.Port), tmp.Path));
        return new GigeLine(tmp, broker, camera, probe, service);
    }

    public async ValueTask DisposeAsync()
    {
        Service.Dispose();
        await Probe.DisposeAsync();
        Camera.Dispose();
        Broker.Dispose();
        Folder.Dispose();
    }
}
