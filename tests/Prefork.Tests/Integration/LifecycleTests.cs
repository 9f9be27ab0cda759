using System.Globalization;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>Starting, stopping, failing: exit codes, pidfiles, and no process left behind.</summary>
[LongClass]
public sealed class LifecycleTests
{
    [Fact]
    public void TERM_exits_0_and_leaves_no_worker_behind()
    {
        using var server = PreforkServer.Start(workers: 3);
        var workers = server.WaitForWorkers(3);
        server.Signal(Signum.SIGTERM);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, server.Master.ExitCode);
        Assert.All(workers, pid => Assert.False(Processes.IsAlive(pid), $"worker {pid} survived"));
    }

    [Theory]
    [InlineData(Signum.SIGINT)]
    [InlineData(Signum.SIGQUIT)]
    public void INT_and_QUIT_stop_fast_with_exit_0(Signum signal)
    {
        using var server = PreforkServer.Start(workers: 2);
        var workers = server.WaitForWorkers(2);
        server.Signal(signal);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, server.Master.ExitCode);
        Assert.All(workers, pid => Assert.False(Processes.IsAlive(pid)));
    }

    [Fact]
    public void A_master_started_with_HUP_INT_and_QUIT_ignored_takes_them_back()
    {
        // As under nohup, or `prefork &` in a script: SIG_IGN is inherited across exec, and .NET never
        // handles a signal ignored at start. The master resets them and executes itself, keeping its pid.
        using var server = StartThrough("#!/bin/sh\ntrap '' HUP INT QUIT\nexec \"$PREFORK\" \"$@\"\n");
        server.AssertLogged("Signals HUP INT QUIT were ignored when prefork started");
        Assert.All(Processes.SignalMasks(server.MasterPid, "SigIgn"), mask => Assert.Equal(0UL, mask & 0b111)); // HUP, INT, QUIT
        server.Signal(Signum.SIGHUP);
        server.WaitForGeneration(2, TimeSpan.FromSeconds(60), workers: 1);
        server.Signal(Signum.SIGINT);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)), server.Log);
        Assert.Equal(0, server.Master.ExitCode);
    }

    [Fact]
    public void A_master_started_with_HUP_and_WINCH_blocked_unblocks_them()
    {
        // A parent's signal mask is kept across exec too (perf record leaves WINCH blocked): every thread the
        // runtime starts would inherit it, and a blocked signal is never delivered. The master unblocks them.
        using var server = StartThrough("#!/usr/bin/python3\nimport os, signal, sys\n" +
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGWINCH})\n" +
            "os.execv(os.environ['PREFORK'], [os.environ['PREFORK']] + sys.argv[1:])\n");
        server.AssertLogged("Signals HUP WINCH were blocked when prefork started");
        Assert.All(Processes.SignalMasks(server.MasterPid, "SigBlk"), mask => Assert.Equal(0UL, mask & (1UL << 0 | 1UL << 27))); // HUP, WINCH
        server.Signal(Signum.SIGHUP);
        server.WaitForGeneration(2, TimeSpan.FromSeconds(60), workers: 1);
    }

    [Fact]
    public void An_empty_last_argument_survives_the_master_executing_itself()
    {
        // /proc/self/cmdline ends "--control-socket\0\0": one NUL ends each argument, the last one empty.
        // Trimming every trailing NUL lost it, and the second image refused "--control-socket needs a value".
        using var server = StartThrough("#!/bin/sh\ntrap '' INT\nexec \"$PREFORK\" \"$@\"\n", ["--control-socket", ""]);
        server.AssertLogged("Signals INT were ignored when prefork started");
        Assert.Equal(200, server.Get("/").Status);
    }

    /// <summary>A one-worker master started through <paramref name="script"/>, which execs $PREFORK with its arguments.</summary>
    private static PreforkServer StartThrough(string script, string[]? args = null)
    {
        var wrapper = Path.Combine(Path.GetTempPath(), $"prefork-wrapper-{Guid.NewGuid():N}");
        File.WriteAllText(wrapper, script);
        File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            return PreforkServer.Start(workers: 1, executable: wrapper, args: args,
                environment: new Dictionary<string, string> { ["PREFORK"] = PreforkServer.Executable });
        }
        finally
        {
            File.Delete(wrapper); // a serving master has long exec'd prefork (and re-execs that, not the wrapper)
        }
    }

    [Fact]
    public void TERM_lets_an_in_flight_request_finish()
    {
        using var server = PreforkServer.Start(workers: 1);
        using var socket = RawHttp.Connect(server.Port); // connected before TERM, whoever runs when
        socket.Send("GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
        server.WaitUntilAllAccepted(); // the worker has taken it
        server.Signal(Signum.SIGTERM);
        var r = new ResponseReader(socket).Read();
        Assert.Equal(200, r.Status);
        Assert.Equal("slept\n", r.BodyText);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, server.Master.ExitCode);
    }

    [Fact]
    public void TERM_also_serves_the_connections_already_waiting_in_the_accept_queue()
    {
        using var server = PreforkServer.Start(workers: 1);
        using var busy = RawHttp.Connect(server.Port);
        busy.Send("GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
        server.WaitUntilAllAccepted(); // the worker has taken it
        // These wait in the kernel's accept queue behind the busy sync worker: connected, request sent.
        var queued = Enumerable.Range(0, 5).Select(_ => RawHttp.Connect(server.Port)).ToList();
        foreach (var socket in queued) socket.Send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
        Assert.Equal(5, server.AcceptQueueLength()); // the busy sync worker accepts nothing meanwhile
        server.Signal(Signum.SIGTERM);
        Assert.Equal("slept\n", new ResponseReader(busy).Read().BodyText);
        Assert.All(queued, socket => Assert.Equal("Hello, World!", new ResponseReader(socket).Read().BodyText));
        queued.ForEach(socket => socket.Dispose());
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, server.Master.ExitCode);
    }

    [Fact]
    public void Workers_exit_when_the_master_is_killed_with_SIGKILL()
    {
        using var server = PreforkServer.Start(workers: 2);
        var workers = server.WaitForWorkers(2);
        Syscall.kill(server.MasterPid, Signum.SIGKILL);
        Assert.True(Wait.Until(() => !workers.Any(Processes.IsAlive), TimeSpan.FromSeconds(10)),
            $"orphan workers survived their master: {string.Join(", ", workers.Where(Processes.IsAlive))}");
    }

    [Fact]
    public void A_second_master_on_a_port_in_use_exits_1_naming_it_and_the_first_keeps_serving()
    {
        using var first = PreforkServer.Start(workers: 1);
        var worker = first.WaitForWorkers(1).Single();
        var (code, output) = PreforkServer.RunToExit("-b", $"127.0.0.1:{first.Port}", "-w", "1", "--app-path", AppContext.BaseDirectory);
        Assert.Equal(1, code);
        Assert.Contains($"cannot listen at 127.0.0.1:{first.Port}: Address already in use", output);
        var served = ServedBy.Parse(first.Get("/pid"));
        Assert.Equal(first.MasterPid, served.Master);
        Assert.Equal(worker, served.Pid);
    }

    [Fact]
    public void Pidfile_is_written_and_removed_on_exit()
    {
        var pidfile = Path.Combine(Path.GetTempPath(), $"prefork-{Guid.NewGuid():N}.pid");
        using var server = PreforkServer.Start($"pidfile = \"{pidfile}\"", workers: 1);
        Assert.Equal(server.MasterPid.ToString(), File.ReadAllText(pidfile).Trim());
        server.Signal(Signum.SIGTERM);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
        Assert.False(File.Exists(pidfile));
    }

    [Fact]
    public void A_bad_config_exits_1_naming_the_key_the_value_and_what_is_allowed()
    {
        var dir = Directory.CreateTempSubdirectory("prefork-badconfig").FullName;
        try
        {
            var config = Path.Combine(dir, "gateway.toml");
            File.WriteAllText(config, "workers = \"many\"\n");
            var (code, output) = PreforkServer.RunToExit("-c", config);
            Assert.Equal(1, code);
            Assert.Contains("'workers'", output);
            Assert.Contains("\"many\"", output);
            Assert.Contains("an integer from 1 to 1024", output);

            File.WriteAllText(config, "worker = 3\n");
            (code, output) = PreforkServer.RunToExit("-c", config);
            Assert.Equal(1, code);
            Assert.Contains("unknown setting 'worker'", output);
            Assert.Contains("did you mean 'workers'", output);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Check_config_and_print_config()
    {
        var (code, output) = PreforkServer.RunToExit("--check-config", "--app-path", AppContext.BaseDirectory);
        Assert.Equal(0, code);
        Assert.Contains("configuration OK", output);
        (code, output) = PreforkServer.RunToExit("--check-config", "-a", "Nope:Nope.App");
        Assert.Equal(1, code);
        Assert.Contains("Nope.dll", output);
        (code, output) = PreforkServer.RunToExit("--print-config", "-w", "7", "-b", "127.0.0.1:1", "-b", "unix:/tmp/x.sock");
        Assert.Equal(0, code);
        Assert.Contains("workers = 7", output);
        Assert.Contains("bind = [\"127.0.0.1:1\", \"unix:/tmp/x.sock\"]", output);
    }

    [Fact]
    public void An_app_that_cannot_load_is_reported_and_retried_with_backoff_while_the_master_lives()
    {
        using var server = PreforkServer.Start("app = \"Prefork.SampleApp:Prefork.SampleApp.Missing\"", workers: 1, waitReady: false);
        server.WaitForLog("next attempt in 2 s", TimeSpan.FromSeconds(90)); // two boots that fail: slow on 2 busy cores
        server.AssertLogged("type 'Prefork.SampleApp.Missing' not found");
        Assert.Matches(@"it has: [^\n]*Prefork\.SampleApp\.SampleApplication", server.Log);
        Assert.False(server.Master.HasExited);
        // Backoff, not a tight loop: the second attempt failed at least the announced 1 s after the first.
        var failed = Regex.Matches(server.Log, @"^\[([^\]]+)\] .* failed to boot and ", RegexOptions.Multiline)
            .Select(m => DateTimeOffset.ParseExact(m.Groups[1].Value, "yyyy-MM-dd HH:mm:ss.fff zzz", CultureInfo.InvariantCulture)).ToList();
        Assert.True(failed.Count >= 2 && failed[1] - failed[0] >= TimeSpan.FromSeconds(1), server.Log);
    }
}
