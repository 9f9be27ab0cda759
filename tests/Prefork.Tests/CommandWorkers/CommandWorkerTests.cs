using System.Net.Sockets;
using System.Text.Json;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.CommandWorkers;

/// <summary>
/// Command workers with a program that is not .NET at all: notify_server.py (Python's standard
/// library) takes its socket the systemd way and speaks sd_notify. The real master, real
/// processes, real signals.
/// </summary>
[LongClass]
public sealed class CommandWorkerTests
{
    internal static readonly string Script = Repo.File("tests/Prefork.Tests/CommandWorkers/notify_server.py");
    /// <summary>Debian's python3 (apt, in .ci/run): a version manager's shim on PATH may be a script that another user cannot run.</summary>
    internal const string Python = "/usr/bin/python3";

    /// <summary>The TOML line that runs the script with <paramref name="flags"/>.</summary>
    internal static string Command(params string[] flags) =>
        "command = [\"" + Python + "\", \"" + Script + "\"" + string.Concat(flags.Select(f => $", \"{f}\"")) + "]\n";

    internal static int Pid(PreforkServer server) => int.Parse(server.Get("/pid").BodyText);

    [Fact]
    public void Three_python_workers_each_get_the_socket_at_fd_3_with_their_own_LISTEN_PID_and_nothing_else()
    {
        // The command-line form: prefork [OPTIONS] -- PROGRAM ARGS...
        using var server = PreforkServer.Start("graceful_timeout = 5\n", workers: 3, args: ["--", Python, Script]);
        var workers = server.WaitForWorkers(3);
        var answering = new HashSet<int>();
        Assert.True(Wait.Until(() => { answering.Add(Pid(server)); return answering.Count == 3; }, TimeSpan.FromSeconds(30)),
            $"pids answering: {string.Join(",", answering)}; workers: {string.Join(",", workers)}");
        Assert.Equal(workers.Order(), answering.Order());

        var env = JsonSerializer.Deserialize<Dictionary<string, string>>(server.Get("/env").BodyText)!;
        int pid = int.Parse(env["LISTEN_PID"]);
        Assert.Contains(pid, workers); // the script itself refuses to serve otherwise; this checks the master's side too
        Assert.Equal("1", env["LISTEN_FDS"]);
        Assert.Equal($"127.0.0.1_{server.Port}", env["LISTEN_FDNAMES"]);
        Assert.Equal(server.MasterPid.ToString(), env["PREFORK_MASTER_PID"]);
        Assert.Equal("1", env["PREFORK_GENERATION"]);
        Assert.Contains(env["PREFORK_WORKER_INDEX"], new[] { "0", "1", "2" });
        Assert.Equal("2048", env["PREFORK_BACKLOG"]);
        Assert.StartsWith("@prefork-", env["NOTIFY_SOCKET"]);
        Assert.Equal("30000000", env["WATCHDOG_USEC"]); // timeout 30 s
        Assert.Equal(env["LISTEN_PID"], env["WATCHDOG_PID"]);

        // What the worker started with: stdin, the output pipe twice, the socket, and nothing else.
        Assert.Equal("0 1 2 3", server.Get("/fds").BodyText);
        Assert.Equal("/dev/null", ReadLink($"/proc/{pid}/fd/0"));
        Assert.StartsWith("socket:", ReadLink($"/proc/{pid}/fd/3"));
    }

    private static string ReadLink(string path) => new FileInfo(path).LinkTarget ?? "";

    [Fact]
    public void Output_goes_to_the_log_line_by_line_with_the_worker_named_and_readiness_comes_from_READY_1()
    {
        using var server = PreforkServer.Start(Command(), workers: 1);
        var pid = server.WaitForWorkers(1)[0];
        server.WaitForLog($"Booted worker 0 (pid {pid}), generation 1", TimeSpan.FromSeconds(10));
        server.AssertLogged("(READY=1)");
        server.Get("/print?text=first%20line");
        server.WaitForLog($"worker 0 (pid {pid}): first line", TimeSpan.FromSeconds(10));
        server.WaitForLog($"worker 0 (pid {pid}): serving on fd 3 as pid {pid}", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void A_program_that_closes_its_output_while_it_runs_does_not_make_the_master_spin()
    {
        using var server = PreforkServer.Start(Command("--close-output"), workers: 1);
        var pid = server.WaitForWorkers(1)[0];
        Assert.True(Wait.Until(() => !File.Exists($"/proc/{pid}/fd/1"), TimeSpan.FromSeconds(10)), "the worker did not close its stdout");
        // An ended pipe polls readable forever: a master that kept polling it would turn its loop
        // without pause. Its read(2) calls tell (CPU time would depend on how busy the machine is):
        // an idle master reads a few times a second.
        long before = ReadCalls(server.MasterPid);
        Thread.Sleep(2000);
        long reads = ReadCalls(server.MasterPid) - before;
        Assert.True(reads < 500, $"the master made {reads} read calls in 2 s");
        Assert.Equal(pid, Pid(server));
    }

    /// <summary>read-like system calls a process has made (/proc/PID/io's syscr).</summary>
    private static long ReadCalls(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/io").First(l => l.StartsWith("syscr:"))["syscr:".Length..].Trim());

    [Fact]
    public void A_request_longer_than_timeout_is_named_from_the_workers_heartbeat()
    {
        using var server = PreforkServer.Start(Command() + "timeout = 2\n", workers: 1);
        var pid = server.WaitForWorkers(1)[0];
        using var socket = RawHttp.Connect(server.Port);
        socket.Send("GET /slow?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        server.WaitForLog($"WORKER TIMEOUT: worker 0 (pid {pid}) spent", TimeSpan.FromSeconds(20));
        server.AssertLogged("on GET /slow (timeout 2 s)");
    }

    [Fact]
    public void Without_notify_ready_delay_counts_a_worker_ready_after_its_delay()
    {
        using var server = PreforkServer.Start(Command("--no-notify") + "ready = \"delay:1\"\n", workers: 1);
        server.WaitForLog("(ready = \"delay:1\")", TimeSpan.FromSeconds(10));
        Assert.Equal(200, server.Get("/").Status);
    }

    [Fact]
    public void A_program_that_never_says_READY_fails_its_boot_with_a_hint()
    {
        using var server = PreforkServer.Start(Command("--no-notify") + "worker_boot_timeout = 2\n", workers: 1, waitReady: false);
        server.WaitForLog("did not report ready within worker_boot_timeout (2 s); it must send READY=1 to $NOTIFY_SOCKET, or set ready = \"delay:SECONDS\"",
            TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void A_program_that_exits_before_it_is_ready_backs_off_with_its_last_output_as_the_reason()
    {
        using var server = PreforkServer.Start(Command("--fail-boot"), workers: 1, waitReady: false);
        server.WaitForLog("failed to boot and exited with code 2: its last output: cannot boot: the database at db.invalid is unreachable. Boot failure 1 in a row; next attempt in 1 s",
            TimeSpan.FromSeconds(30));
        server.WaitForLog("Boot failure 2 in a row; next attempt in 2 s", TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void A_notify_datagram_from_a_process_that_is_no_worker_is_refused()
    {
        using var server = PreforkServer.Start(Command(), workers: 1);
        server.WaitForWorkers(1);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.SendTo("READY=1\nWATCHDOG=trigger"u8.ToArray(), new UnixDomainSocketEndPoint($"\0prefork-{server.MasterPid}-notify"));
        server.WaitForLog($"Refused a notify message from pid {Environment.ProcessId}, which is no worker of this master", TimeSpan.FromSeconds(10));
        Assert.DoesNotContain("WATCHDOG=trigger", server.Log);
        // The line is the master's: its [pid] is the master's, not the sender's.
        var line = server.Log.Split('\n').First(l => l.Contains("Refused a notify message"));
        Assert.Contains($"] [{server.MasterPid}] [WARN]", line);
    }

    [RootFact]
    public void With_user_set_the_program_runs_as_that_user_and_keeps_its_LISTEN_PID()
    {
        using var server = PreforkServer.Start(Command() + "user = \"nobody\"\n", workers: 1);
        var pid = server.WaitForWorkers(1)[0];
        var uid = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];
        Assert.Equal("65534", uid);
        Assert.Equal(pid, Pid(server)); // the script checked LISTEN_PID against its own pid, after setpriv
    }

    [Fact]
    public void Gateway_settings_beside_a_command_are_named_as_not_applying_at_start_and_in_print_config()
    {
        using var server = PreforkServer.Start(Command() + "worker_class = \"epoll\"\nthreads = 4\n", workers: 1);
        server.AssertLogged("command is set, so these settings of gateway workers do not apply (the program serves on its own terms): worker_class, threads");
        var printed = PreforkServer.RunToExit("-c", server.ConfigPath, "--print-config");
        Assert.Contains("threads = 4  # does not apply: command is set", printed.Output);
        Assert.Contains("ready = \"notify\"\n", printed.Output.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void Under_socket_activation_the_socket_systemd_passed_at_fd_4_is_the_workers_fd_3_and_systemds_variables_stay_the_masters()
    {
        using var notify = new Support.NotifySocket(@abstract: false);
        int port3 = PreforkServer.FreePort(), port4 = PreforkServer.FreePort();
        using var service = ServiceProcess.Start(Command() + "bind = [\"fd://4\"]\nworkers = 1\nlisten_fdnames = [\"web\"]",
            new Dictionary<string, string>(), "systemd-socket-activate", "-l", $"127.0.0.1:{port3}", "-l", $"127.0.0.1:{port4}",
            "--fdname=first:second", $"-ENOTIFY_SOCKET={notify.Name}");
        service.WaitForLog($"Listening on 127.0.0.1:{port4} as 4", TimeSpan.FromSeconds(30));
        var r = RawHttp.Get(port4, "/env", timeoutMs: 60_000); // the first connection starts the master; the worker serves it
        var env = JsonSerializer.Deserialize<Dictionary<string, string>>(r.BodyText)!;
        Assert.Equal("1", env["LISTEN_FDS"]);
        Assert.Equal("web", env["LISTEN_FDNAMES"]);
        Assert.StartsWith("@prefork-", env["NOTIFY_SOCKET"]); // the master's socket for its workers, not systemd's
        notify.WaitUntil(m => m.Any(x => x.StartsWith("READY=1")), TimeSpan.FromSeconds(30), "READY=1 to systemd", () => service.Log);
        var worker = Assert.Single(service.WorkerPids());
        Assert.Equal(new FileInfo($"/proc/{service.MasterPid}/fd/4").LinkTarget, new FileInfo($"/proc/{worker}/fd/3").LinkTarget);
    }

    [Fact]
    public void Check_config_looks_for_the_program()
    {
        var missing = PreforkServer.RunToExit("--check-config", "--", "no-such-program-xyz", "arg");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("command program no-such-program-xyz is not found in PATH", missing.Output);
        var found = PreforkServer.RunToExit("--check-config", "--", "python3", Script);
        Assert.Equal(0, found.ExitCode);
        Assert.Contains("configuration OK, command python3 found", found.Output);
    }
}
