using System.Collections.Concurrent;
using System.Diagnostics;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// Prefork as a systemd service, with real peers: a notify socket the test owns (what systemd
/// listens on) and Debian's systemd-socket-activate (what passes sockets the way systemd does).
/// </summary>
public sealed class SystemdTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>One thing done to the service, and the state messages it must cause, in order.</summary>
    private sealed record Step(string Name, Action<ServiceProcess> Act, params string[] States);

    [Fact]
    public void Notify_sequence_over_start_HUP_USR2_refused_HUP_and_TERM()
    {
        using var notify = new NotifySocket(@abstract: true);
        int port = PreforkServer.FreePort();
        var toml = $"bind = [\"127.0.0.1:{port}\"]\nworkers = 2";
        using var service = ServiceProcess.Start(toml, new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Name });

        long hupSentUsec = 0;
        var steps = new List<Step>
        {
            new("start", _ => { }, "READY=1"),
            new("HUP", s => { hupSentUsec = MonotonicUsec(); s.Signal(Signum.SIGHUP); }, "RELOADING=1", "READY=1"),
            // In-place re-exec: the same pid says READY=1 again once the new program's workers serve.
            new("USR2", s => s.Signal(Signum.SIGUSR2), "RELOADING=1", "READY=1"),
            new("HUP with a broken config", s =>
            {
                File.WriteAllText(s.ConfigPath, "workers = \"many\"\n");
                s.Signal(Signum.SIGHUP);
            }, "RELOADING=1", "READY=1"),
            new("TERM", s => s.Signal(Signum.SIGTERM), "STOPPING=1"),
        };

        var expected = new List<string>();
        foreach (var step in steps)
        {
            step.Act(service);
            expected.AddRange(step.States);
            notify.WaitUntil(_ => notify.States.Count >= expected.Count, Bound, $"{string.Join(", ", step.States)} after {step.Name}", () => service.Log);
            Assert.Equal(expected, notify.States);
        }
        Assert.True(service.WaitForExit(TimeSpan.FromSeconds(30)), service.Log);
        Assert.Equal(0, service.Master.ExitCode);
        Assert.Equal(expected, notify.States); // nothing more after STOPPING=1

        var messages = notify.Messages;
        var ready = messages.Where(m => m.StartsWith("READY=1")).ToList();
        Assert.Equal(service.MasterPid.ToString(), NotifySocket.Field(ready[0], "MAINPID"));
        Assert.Contains("Serving: 2 workers of generation 1 booted", NotifySocket.Field(ready[0], "STATUS"));
        Assert.Contains("Serving: 2 workers of generation 2 booted", NotifySocket.Field(ready[1], "STATUS"));
        Assert.Equal(service.MasterPid.ToString(), NotifySocket.Field(ready[2], "MAINPID")); // after USR2: the same pid
        Assert.Contains("Serving: 2 workers of generation 3 booted", NotifySocket.Field(ready[2], "STATUS"));
        service.AssertLogged("Upgraded in place");
        Assert.Contains("Reload refused", NotifySocket.Field(ready[3], "STATUS"));
        Assert.Contains("'workers'", NotifySocket.Field(ready[3], "STATUS"));

        // MONOTONIC_USEC is CLOCK_MONOTONIC, taken after the signal was sent (what Type=notify-reload checks).
        var reloading = messages.First(m => m.StartsWith("RELOADING=1"));
        long usec = long.Parse(NotifySocket.Field(reloading, "MONOTONIC_USEC")!);
        Assert.InRange(usec, hupSentUsec, MonotonicUsec());
    }

    [Fact]
    public void STATUS_counts_requests_and_the_watchdog_is_fed_only_when_it_names_this_process()
    {
        using var fed = new NotifySocket(@abstract: false);
        using var notFed = new NotifySocket(@abstract: true);
        int port1 = PreforkServer.FreePort(), port2 = PreforkServer.FreePort();
        using var a = ServiceProcess.Start($"bind = [\"127.0.0.1:{port1}\"]\nworkers = 1",
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = fed.Name, ["WATCHDOG_USEC"] = "1000000" });
        // WATCHDOG_PID names another process (pid 1): the watchdog is not ours to feed.
        using var b = ServiceProcess.Start($"bind = [\"127.0.0.1:{port2}\"]\nworkers = 1",
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notFed.Name, ["WATCHDOG_USEC"] = "1000000", ["WATCHDOG_PID"] = "1" });

        notFed.WaitUntil(m => m.Any(x => x.StartsWith("READY=1")), Bound, "READY=1", () => b.Log);
        fed.WaitUntil(m => m.Any(x => x.StartsWith("READY=1")), Bound, "READY=1", () => a.Log);
        for (int i = 0; i < 5; i++) Assert.Equal(200, RawHttp.Get(port1, "/").Status);
        fed.WaitUntil(m => m.Count(x => x == "WATCHDOG=1") >= 3, Bound, "three WATCHDOG=1 pings", () => a.Log);
        // Worker pings reach the master once a second; STATUS follows at most once a second.
        fed.WaitUntil(m => m.Any(x => NotifySocket.Field(x, "STATUS")?.Contains("; 5 requests served") == true), Bound, "STATUS with 5 requests served", () => a.Log);

        Assert.DoesNotContain("WATCHDOG=1", notFed.Messages);
        Assert.Equal(["READY=1"], fed.States); // neither pings nor STATUS updates change the state
    }

    [Fact]
    public void Serves_through_sockets_passed_by_systemd_socket_activate_and_keeps_them_across_reloads()
    {
        using var notify = new NotifySocket(@abstract: false);
        int port = PreforkServer.FreePort();
        var unused = Path.Combine(Path.GetTempPath(), $"prefork-unused-{Guid.NewGuid():N}.sock");
        var environment = new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Name };
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { } root) environment["DOTNET_ROOT"] = root;
        // systemd-socket-activate passes only the variables named with -E; it binds, waits for the
        // first connection, then execs prefork with LISTEN_FDS=1, LISTEN_PID and LISTEN_FDNAMES.
        var launcher = new List<string> { "systemd-socket-activate", "-l", $"127.0.0.1:{port}", "--fdname=http" };
        foreach (var (k, v) in environment) launcher.Add($"-E{k}={v}");
        using var service = ServiceProcess.Start($"bind = [\"unix:{unused}\"]\nworkers = 2", environment, [.. launcher]);
        service.WaitForLog($"Listening on 127.0.0.1:{port} as 3", Bound); // systemd-socket-activate has bound

        // The first connection starts the service and is served once it boots: nothing is lost.
        var first = RawHttp.Get(port, "/", timeoutMs: 60_000);
        Assert.Equal("Hello, World!", first.BodyText);
        service.WaitForLog("Using 1 socket(s) passed by systemd (fd 3 'http')", Bound);
        Assert.False(File.Exists(unused), "bind was used although systemd passed a socket");
        notify.WaitUntil(m => m.Any(x => x.StartsWith("READY=1")), Bound, "READY=1", () => service.Log);

        // Workers see their fds through PREFORK_LISTEN_FDS, and none of systemd's variables.
        var workers = service.WorkerPids();
        Assert.Equal(2, workers.Count);
        foreach (var pid in workers)
        {
            var env = File.ReadAllText($"/proc/{pid}/environ").Split('\0');
            Assert.Contains("PREFORK_LISTEN_FDS=3", env);
            Assert.DoesNotContain(env, e => e.StartsWith("LISTEN_") || e.StartsWith("NOTIFY_SOCKET=") || e.StartsWith("WATCHDOG_"));
        }

        service.Signal(Signum.SIGHUP);
        notify.WaitUntil(_ => notify.States.Count(s => s == "READY=1") == 2, Bound, "READY=1 after HUP", () => service.Log);
        Assert.Equal(200, RawHttp.Get(port, "/").Status);
        // The old generation is retired once the new one serves: it exits soon after READY=1.
        Assert.True(Wait.Until(() => !service.WorkerPids().Any(workers.Contains), Bound), $"old workers still run: {string.Join(", ", service.WorkerPids())}");
        Assert.Equal(2, service.WorkerPids().Count);

        service.Signal(Signum.SIGTERM);
        Assert.True(service.WaitForExit(TimeSpan.FromSeconds(30)), service.Log);
        Assert.Equal(0, service.Master.ExitCode);
    }

    /// <summary>
    /// What prefork.socket buys: systemd holds the listening socket, so while Prefork restarts,
    /// new connections wait in the kernel's queue and the next master serves them. Here the test
    /// plays systemd: it holds the socket and passes it as fd 3 with LISTEN_FDS/LISTEN_PID.
    /// </summary>
    [Fact]
    public async Task A_restart_under_socket_activation_loses_no_connection()
    {
        using var held = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        held.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        held.Listen(128);
        int port = ((System.Net.IPEndPoint)held.LocalEndPoint!).Port, fd = (int)held.Handle;
        // Inheritable only while a master is being started (a process another test starts meanwhile
        // would hold a copy too: harmless, it only keeps the socket open longer).
        Syscall.fcntl(fd, FcntlCommand.F_SETFD, 0);
        // bash moves the socket to fd 3 and execs prefork with its own pid as LISTEN_PID, like systemd.
        string[] launcher = ["bash", "-c", $"exec 3<&{fd} {fd}<&-; LISTEN_PID=$$ exec \"$0\" \"$@\""];
        var environment = new Dictionary<string, string> { ["LISTEN_FDS"] = "1", ["LISTEN_FDNAMES"] = "http" };
        const string toml = "bind = [\"127.0.0.1:1\"]\nworkers = 2";

        var first = ServiceProcess.Start(toml, environment, launcher);
        ServiceProcess? second = null;
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2)); // the load's bound
        try
        {
            Syscall.fcntl(fd, FcntlCommand.F_SETFD, 1); // only the first child needed it
            first.WaitForLog("Ready:", Bound);
            first.AssertLogged("Using 1 socket(s) passed by systemd (fd 3 'http')");

            var failures = new ConcurrentQueue<string>();
            var masters = new ConcurrentQueue<int>();
            var load = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    try
                    {
                        var r = RawHttp.Get(port, "/pid", timeoutMs: 60_000);
                        if (r.Status != 200) failures.Enqueue($"status {r.Status}");
                        else masters.Enqueue(ServedBy.Parse(r).Master);
                    }
                    catch (Exception e) { failures.Enqueue(e.GetBaseException().Message); }
                }
            })).ToArray();

            void WaitForMore(int count, int master)
            {
                Wait.Until(() => masters.Count(m => m == master) >= count || !failures.IsEmpty, Bound);
                Assert.True(masters.Count(m => m == master) >= count, $"master {master} served {masters.Count(m => m == master)}; failures: {string.Join("; ", failures.Take(5))}");
            }

            WaitForMore(100, first.MasterPid);
            first.Signal(Signum.SIGTERM);
            Assert.True(first.WaitForExit(TimeSpan.FromSeconds(30)), first.Log);
            Assert.Equal(0, first.Master.ExitCode);

            // Nobody serves now: connections queue in the socket the test still holds.
            Syscall.fcntl(fd, FcntlCommand.F_SETFD, 0);
            second = ServiceProcess.Start(toml, environment, launcher);
            Syscall.fcntl(fd, FcntlCommand.F_SETFD, 1);
            second.WaitForLog("Ready:", Bound);
            WaitForMore(100, second.MasterPid);

            stop.Cancel();
            await Task.WhenAny(Task.WhenAll(load), Task.Delay(Bound));
            Assert.True(failures.IsEmpty, $"{failures.Count} requests failed across the restart: {string.Join("; ", failures.Distinct().Take(10))}");
        }
        finally
        {
            stop.Cancel(); // also when an assertion failed: no client loops on against a dead port
            first.Dispose();
            second?.Dispose();
        }
    }

    [Fact]
    public void A_passed_fd_that_is_not_a_listening_socket_is_refused_at_start()
    {
        // bind = "fd://N" names an inherited descriptor explicitly; here N is not a socket at all.
        var (code, output) = PreforkServer.RunToExit("-b", "fd://99", "--app-path", AppContext.BaseDirectory);
        Assert.Equal(1, code);
        Assert.Contains("Cannot start", output);
    }

    [Fact]
    public void Bind_fd_N_picks_one_of_the_sockets_systemd_passed_and_workers_get_only_that_one()
    {
        int port3 = PreforkServer.FreePort(), port4 = PreforkServer.FreePort();
        using var service = ServiceProcess.Start("bind = [\"fd://4\"]\nworkers = 1", new Dictionary<string, string>(),
            "systemd-socket-activate", "-l", $"127.0.0.1:{port3}", "-l", $"127.0.0.1:{port4}", "--fdname=first:second");
        service.WaitForLog($"Listening on 127.0.0.1:{port4} as 4", Bound);
        var r = RawHttp.Get(port4, "/", timeoutMs: 60_000);
        Assert.Equal("Hello, World!", r.BodyText);
        service.WaitForLog("Socket fd 3 (first) passed by systemd is not named in bind", Bound);

        // The worker holds fd 4's socket and not fd 3's.
        static string Target(int pid, int fd) { try { return new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget ?? ""; } catch (IOException) { return ""; } }
        var socket3 = Target(service.MasterPid, 3);
        Assert.StartsWith("socket:", socket3);
        var worker = Assert.Single(service.WorkerPids());
        var workerFds = Directory.GetFiles($"/proc/{worker}/fd").Select(f => Target(worker, int.Parse(Path.GetFileName(f)))).ToList();
        Assert.Contains(Target(service.MasterPid, 4), workerFds);
        Assert.DoesNotContain(socket3, workerFds);
    }

    [Fact]
    public void A_datagram_socket_passed_by_systemd_is_refused_at_start()
    {
        int port = PreforkServer.FreePort();
        using var service = ServiceProcess.Start("workers = 1", new Dictionary<string, string>(),
            "systemd-socket-activate", "--datagram", "-l", $"127.0.0.1:{port}");
        service.WaitForLog($"Listening on 127.0.0.1:{port} as 3", Bound);
        // systemd-socket-activate execs prefork when the first datagram arrives.
        using var udp = new System.Net.Sockets.UdpClient();
        var until = DateTime.UtcNow + Bound;
        while (!service.Log.Contains("Cannot start") && !service.Master.HasExited && DateTime.UtcNow < until)
        {
            udp.Send("x"u8.ToArray(), "127.0.0.1", port);
            Thread.Sleep(200);
        }
        Assert.True(service.WaitForExit(TimeSpan.FromSeconds(30)), service.Log);
        Assert.Equal(1, service.Master.ExitCode);
        service.AssertLogged("fd 3 is not a listening stream socket");
    }

    private static long MonotonicUsec() => Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000);
}
