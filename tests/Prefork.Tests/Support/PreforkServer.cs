using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Prefork.Tests.Support;

/// <summary>
/// Starts the real `prefork` executable on a free port with a config written for the test,
/// captures its log, and stops it (and any worker it left) by pid when disposed.
/// </summary>
public sealed class PreforkServer : MasterProcess
{
    public int Port { get; }

    private PreforkServer(Process master, int port, string directory, string configPath) : base(master, directory, configPath)
    {
        Port = port;
    }

    /// <summary>The `prefork` the build published beside the tests, ReadyToRun for linux-x64 (PublishPreforkForTests in the .csproj).</summary>
    public static string Executable => Path.Combine(AppContext.BaseDirectory, "published", "prefork");

    /// <summary>Starts a master with `bind` on a free port plus the given TOML lines (and variables added to its environment); waits until it serves.</summary>
    public static PreforkServer Start(string toml = "", int workers = 2, bool waitReady = true, string? executable = null, string[]? args = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        int port = FreePort();
        var dir = Path.Combine(Path.GetTempPath(), "prefork-test-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(dir); // not CreateTempSubdirectory's 0700: workers may run as another user
        var config = Path.Combine(dir, "gateway.toml");
        var text = new StringBuilder();
        if (!toml.Contains("bind")) text.AppendLine($"bind = [\"127.0.0.1:{port}\"]");
        if (!toml.Contains("workers")) text.AppendLine($"workers = {workers}");
        // The classic model unless a test says otherwise: each class has its own tests (WorkerClassTests).
        if (!toml.Contains("worker_class") && !IsCommand(toml)) text.AppendLine("worker_class = \"sync\"");
        text.Append(ConfigText(toml.Replace("{port}", port.ToString())));
        File.WriteAllText(config, text.ToString());

        var psi = new ProcessStartInfo(executable ?? Executable)
        {
            WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            ArgumentList = { "-c", config },
        };
        foreach (var arg in args ?? []) psi.ArgumentList.Add(arg); // command-line overrides, after the config
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var server = new PreforkServer(Process.Start(psi)!, port, dir, config);
        try
        {
            if (waitReady) server.WaitForLog("Ready:", TimeSpan.FromSeconds(90));
        }
        catch
        {
            server.Dispose(); // the test never gets it to dispose: stop the master and its workers here
            throw;
        }
        return server;
    }

    /// <summary>`prefork ctl -c CONFIG ARGS...` against this master, run to completion: exit code and all output.</summary>
    public (int ExitCode, string Output) Ctl(params string[] args) => RunToExit(["ctl", "-c", ConfigPath, .. args]);

    /// <summary>Runs prefork to completion (for --check-config, bad configs…): exit code and all output.</summary>
    public static (int ExitCode, string Output) RunToExit(params string[] args) =>
        Repo.Run(Executable, args, Path.GetTempPath(), TimeSpan.FromSeconds(60));

    /// <summary>
    /// Connections waiting in the kernel's accept queue of this server's IPv4 listener: for a
    /// listening socket, /proc/net/tcp's rx_queue column is that queue's length.
    /// </summary>
    public int AcceptQueueLength()
    {
        var local = $"0100007F:{Port:X4}";
        foreach (var line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f[1] == local && f[3] == "0A") return Convert.ToInt32(f[4].Split(':')[1], 16);
        }
        throw new InvalidOperationException($"no listener on 127.0.0.1:{Port}");
    }

    /// <summary>Waits until the workers have accepted every connection made so far (the queue stays empty for 100 ms).</summary>
    public void WaitUntilAllAccepted(TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        int calm = 0;
        while (calm < 5)
        {
            if (DateTime.UtcNow > until) throw new TimeoutException($"{AcceptQueueLength()} connection(s) still wait to be accepted");
            calm = AcceptQueueLength() == 0 ? calm + 1 : 0;
            Thread.Sleep(20);
        }
    }

    /// <summary>Waits until exactly <paramref name="count"/> workers run (and answer), returns their pids.</summary>
    public IReadOnlyList<int> WaitForWorkers(int count, TimeSpan? timeout = null, Func<IReadOnlyList<int>, bool>? also = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        IReadOnlyList<int> pids = [];
        while (DateTime.UtcNow < until)
        {
            pids = WorkerPids();
            if (pids.Count == count && (also is null || also(pids))) return pids;
            Thread.Sleep(100);
        }
        throw new TimeoutException($"expected {count} workers, have [{string.Join(",", pids)}]. Log:\n{Log}");
    }

    public HttpResponse Get(string path) => RawHttp.Get(Port, path);

    // Test ports come from below the kernel's ephemeral range (32768+), so neither a client's
    // outgoing connection nor another bind(0) can take one between choosing it and the master
    // binding it; each is handed out once per test run. (bench/ uses 18400 and up.)
    private const int FirstTestPort = 20000, TestPorts = 12000;
    private static int _nextPort = Environment.ProcessId * 97 % TestPorts;

    /// <summary>A loopback port nobody listens on, never handed out twice in this test run.</summary>
    public static int FreePort()
    {
        for (int attempt = 0; attempt < TestPorts; attempt++)
        {
            int port = FirstTestPort + Interlocked.Increment(ref _nextPort) % TestPorts;
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                probe.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException) { } // in use (or lingering): try the next one
        }
        throw new InvalidOperationException("no free test port");
    }
}
