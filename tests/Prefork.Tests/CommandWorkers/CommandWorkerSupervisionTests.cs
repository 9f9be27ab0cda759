using System.Net.Sockets;
using System.Text.Json;
using Mono.Unix.Native;
using Prefork.Tests.Support;
using static Prefork.Tests.CommandWorkers.CommandWorkerTests;

namespace Prefork.Tests.CommandWorkers;

/// <summary>Command workers (notify_server.py) supervised: replaced when killed or silent, retired by signal, rolled out by HUP, carried over USR2. Its own class so it runs beside CommandWorkerTests.</summary>
[LongClass]
public sealed class CommandWorkerSupervisionTests
{
    [Fact]
    public void A_worker_killed_with_KILL_is_replaced()
    {
        using var server = PreforkServer.Start(Command(), workers: 2);
        var before = server.WaitForWorkers(2);
        Syscall.kill(before[0], Signum.SIGKILL);
        var after = server.WaitForWorkers(2, also: pids => !pids.Contains(before[0]));
        Assert.Contains(before[1], after);
        server.WaitForLog("Booted worker", TimeSpan.FromSeconds(20), occurrences: 3);
        Assert.Equal(200, server.Get("/").Status);
    }

    [Fact]
    public void A_worker_that_stops_sending_WATCHDOG_is_killed_after_timeout_and_the_log_names_it()
    {
        using var server = PreforkServer.Start(Command() + "timeout = 2\n", workers: 1);
        var pid = server.WaitForWorkers(1)[0];
        server.WaitForLog($"worker 0 (pid {pid}): first heartbeat sent", TimeSpan.FromSeconds(10)); // WATCHDOG=1 sent: the watchdog applies
        server.Get("/stop-watchdog");
        server.WaitForLog($"WORKER TIMEOUT: worker 0 (pid {pid}) silent for", TimeSpan.FromSeconds(20));
        server.WaitForWorkers(1, also: pids => !pids.Contains(pid));
    }

    [Fact]
    public void A_program_that_never_sent_WATCHDOG_is_not_killed_for_its_silence()
    {
        using var server = PreforkServer.Start(Command("--no-notify") + "ready = \"delay:1\"\ntimeout = 1\n", workers: 1);
        var pid = server.WaitForWorkers(1)[0];
        // Three timeouts pass; the master's loop judges every worker at least once a second.
        Assert.False(Wait.Until(() => server.Log.Contains("WORKER TIMEOUT"), TimeSpan.FromSeconds(3)), server.Log);
        Assert.Equal(pid, Pid(server));
    }

    [Fact]
    public void Retirement_sends_stop_signal_and_a_program_that_ignores_it_is_killed_after_graceful_timeout()
    {
        using (var server = PreforkServer.Start(Command() + "stop_signal = \"USR2\"\n", workers: 1))
        {
            var pid = server.WaitForWorkers(1)[0];
            server.Signal(Signum.SIGTERM);
            Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
            server.AssertLogged($"worker 0 (pid {pid}): got SIGUSR2, stopping");
            server.AssertLogged($"worker 0 (pid {pid}) exited with code 0");
        }
        using (var server = PreforkServer.Start(Command("--linger") + "graceful_timeout = 2\n", workers: 1))
        {
            var pid = server.WaitForWorkers(1)[0];
            server.Signal(Signum.SIGTERM);
            Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
            server.AssertLogged($"worker 0 (pid {pid}): got SIGTERM, ignoring it");
            server.AssertLogged($"worker 0 (pid {pid}) still running at shutdown; killing it");
            Assert.False(Processes.IsAlive(pid));
        }
    }

    [Fact]
    public async Task HUP_rolls_out_a_changed_command_and_no_request_fails_meanwhile()
    {
        using var server = PreforkServer.Start(Command(), workers: 2);
        var first = server.WaitForWorkers(2);
        int failed = 0, served = 0;
        using var stop = new CancellationTokenSource();
        var load = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try { if (server.Get("/").Status == 200) served++; else failed++; }
                catch (Exception e) when (e is SocketException or IOException) { failed++; }
            }
        });
        File.AppendAllText(server.ConfigPath, "raw_env = [\"GREETING=second\"]\n");
        for (int round = 2; round <= 4; round++)
        {
            server.Signal(Signum.SIGHUP);
            server.WaitForGeneration(round, TimeSpan.FromSeconds(30));
        }
        var last = server.WaitForWorkers(2, also: pids => !pids.Intersect(first).Any());
        stop.Cancel();
        await load;
        Assert.Equal(0, failed);
        Assert.True(served > 10, $"only {served} requests served");
        var env = JsonSerializer.Deserialize<Dictionary<string, string>>(server.Get("/env").BodyText)!;
        Assert.Equal("4", env["PREFORK_GENERATION"]);
        Assert.Contains(int.Parse(env["LISTEN_PID"]), last);
    }

    [Fact]
    public void USR2_keeps_the_master_pid_and_the_new_image_hears_its_new_workers_on_the_handed_over_notify_socket()
    {
        using var server = PreforkServer.Start(Command(), workers: 2);
        var before = server.WaitForWorkers(2);
        server.Signal(Signum.SIGUSR2);
        server.WaitForLog("Adopted 2 workers; starting generation 2", TimeSpan.FromSeconds(60));
        server.WaitForGeneration(2, TimeSpan.FromSeconds(60)); // READY=1 reached the new image
        server.WaitForWorkers(2, also: pids => !pids.Intersect(before).Any());
        Assert.False(server.Master.HasExited);
        var env = JsonSerializer.Deserialize<Dictionary<string, string>>(server.Get("/env").BodyText)!;
        Assert.Equal(server.MasterPid.ToString(), env["PREFORK_MASTER_PID"]);
    }
}
