using System.Diagnostics;
using System.Net.Sockets;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.AspNetCore;

/// <summary>
/// src/Prefork.SampleWeb (built beside the tests), or another ASP.NET Core app, run as a process: either the way the Prefork master
/// runs a command worker, under Debian's systemd-socket-activate (which binds, then execs the app on the
/// first connection with LISTEN_FDS/LISTEN_PID set; the test process is its parent, so it plays the
/// master: PREFORK_MASTER_PID is the test's pid), or on its own with --urls. Disposing stops it by pid.
/// </summary>
public sealed class SampleWebProcess : IDisposable
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "Prefork.SampleWeb.dll");

    /// <summary>The dotnet host running the tests (the SDK sets DOTNET_HOST_PATH), so the app runs on the same runtime.</summary>
    public static string DotnetHost => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    private readonly CapturedOutput _output;

    public Process Process { get; }
    public int Pid => Process.Id;
    public int Port { get; }
    public string Log => _output.Text;

    private SampleWebProcess(Process process, int port)
    {
        Process = process;
        Port = port;
        _output = new CapturedOutput(process);
    }

    /// <summary>
    /// The sample as a Prefork command worker on a fresh loopback port (and <paramref name="unixSocket"/>
    /// too, when given), with the master's variables plus <paramref name="environment"/>. It starts on
    /// the first connection: call <see cref="Get"/> (or <see cref="WaitUntilServing"/>).
    /// </summary>
    public static SampleWebProcess UnderPrefork(NotifySocket? notify, IReadOnlyDictionary<string, string>? environment = null,
        string? unixSocket = null, int? masterPid = null, string? dll = null)
    {
        int port = PreforkServer.FreePort();
        var variables = new Dictionary<string, string>
        {
            ["PREFORK_MASTER_PID"] = (masterPid ?? Environment.ProcessId).ToString(),
            ["PREFORK_WORKER_INDEX"] = "0",
            ["PREFORK_GENERATION"] = "1",
            ["DOTNET_EnableDiagnostics"] = "0",
        };
        if (notify is not null) variables["NOTIFY_SOCKET"] = notify.Name;
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { } root) variables["DOTNET_ROOT"] = root;
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) variables[k] = v;

        // systemd-socket-activate passes only the variables named with -E.
        var psi = Redirected("systemd-socket-activate");
        psi.ArgumentList.Add("-l");
        psi.ArgumentList.Add($"127.0.0.1:{port}");
        if (unixSocket is not null)
        {
            psi.ArgumentList.Add("-l");
            psi.ArgumentList.Add(unixSocket);
        }
        psi.ArgumentList.Add(unixSocket is null ? "--fdname=http" : "--fdname=http:local");
        foreach (var (k, v) in variables) psi.ArgumentList.Add($"-E{k}={v}");
        psi.ArgumentList.Add(DotnetHost);
        psi.ArgumentList.Add(dll ?? Dll);
        var process = new SampleWebProcess(Process.Start(psi)!, port);
        process._output.WaitFor($"Listening on 127.0.0.1:{port} as 3", Bound); // bound: connections queue from now on
        return process;
    }

    /// <summary>
    /// The sample as one of several workers of a listening socket the test owns (as the master does):
    /// bash puts it at fd 3, sets LISTEN_PID to its own pid and execs the app. The socket must be
    /// inheritable while this runs (see <see cref="SharedSocketTests"/>).
    /// </summary>
    public static SampleWebProcess OnSharedSocket(Socket listener, int index, int port)
    {
        int fd = (int)listener.Handle;
        var psi = Redirected("bash");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"exec 3<&{fd} {fd}<&-; export LISTEN_PID=$$; exec \"$0\" \"$1\"");
        psi.ArgumentList.Add(DotnetHost);
        psi.ArgumentList.Add(Dll);
        psi.Environment["LISTEN_FDS"] = "1";
        psi.Environment["PREFORK_MASTER_PID"] = Environment.ProcessId.ToString();
        psi.Environment["PREFORK_WORKER_INDEX"] = index.ToString();
        return new SampleWebProcess(Process.Start(psi)!, port);
    }

    /// <summary>The sample on its own: `dotnet Prefork.SampleWeb.dll --urls http://127.0.0.1:PORT`, with <paramref name="environment"/> added.</summary>
    public static SampleWebProcess Standalone(IReadOnlyDictionary<string, string>? environment = null, string? dll = null)
    {
        int port = PreforkServer.FreePort();
        var psi = Redirected(DotnetHost);
        psi.ArgumentList.Add(dll ?? Dll);
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add($"http://127.0.0.1:{port}");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var process = new SampleWebProcess(Process.Start(psi)!, port);
        process._output.WaitFor("Application started", Bound);
        return process;
    }

    private static ProcessStartInfo Redirected(string program) => new(program)
    {
        RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Path.GetTempPath(),
    };

    /// <summary>Makes the first connection (which starts the app under systemd-socket-activate) and waits for its answer.</summary>
    public HttpResponse WaitUntilServing() => RawHttp.Get(Port, "/", timeoutMs: (int)Bound.TotalMilliseconds);

    /// <summary>Makes the first connection and sends a request, whatever becomes of it (for an app that stops at once).</summary>
    public void Knock()
    {
        try { RawHttp.Get(Port, "/", timeoutMs: (int)Bound.TotalMilliseconds); }
        catch (Exception e) when (e is IOException or SocketException) { }
    }

    public HttpResponse Get(string path, int timeoutMs = 10_000) => RawHttp.Get(Port, path, timeoutMs);

    public void WaitForLog(string text) => _output.WaitFor(text, Bound);

    /// <summary>The TCP ports this process listens on, from its socket fds and /proc/net/tcp{,6}.</summary>
    public IReadOnlyList<int> ListeningPorts()
    {
        var inodes = new HashSet<string>();
        foreach (var fd in Directory.EnumerateFiles($"/proc/{Pid}/fd"))
        {
            try
            {
                var target = new FileInfo(fd).LinkTarget;
                if (target is not null && target.StartsWith("socket:[")) inodes.Add(target[8..^1]);
            }
            catch (IOException) { } // closed meanwhile
        }
        var ports = new List<int>();
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f[3] == "0A" && inodes.Contains(f[9])) ports.Add(Convert.ToInt32(f[1].Split(':')[1], 16));
            }
        return ports;
    }

    /// <summary>The backlog of the listener on <see cref="Port"/>: what `ss -ltn` shows as Send-Q.</summary>
    public int Backlog()
    {
        var (code, output) = Repo.Run("ss", ["-Hltn", $"sport = :{Port}"]);
        Assert.True(code == 0, "ss failed: " + output);
        var fields = output.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(fields.Length >= 3 && fields[0] == "LISTEN", $"no listener on {Port} in `ss -ltn`: {output}");
        return int.Parse(fields[2]);
    }

    public void Signal(Signum signal) => Syscall.kill(Pid, signal);

    public bool WaitForExit(TimeSpan timeout)
    {
        if (!Process.WaitForExit(timeout)) return false;
        Process.WaitForExit(); // and the last lines of its output
        return true;
    }

    public void Dispose() => Processes.Stop(Process, Signum.SIGTERM, TimeSpan.FromSeconds(15), []);
}
