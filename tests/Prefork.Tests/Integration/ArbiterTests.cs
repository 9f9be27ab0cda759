using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>The master as a supervisor: every signal, reloads under load, timeouts, recycling, hooks. Real processes, real signals.</summary>
public sealed class ArbiterTests
{
    [Theory]
    [InlineData("sync")]
    [InlineData("threads")]   // keep-alive connections held across the reload
    [InlineData("epoll")]
    public void Ten_HUPs_under_load_drop_no_request_replace_every_worker_and_apply_the_new_config(string workerClass)
    {
        using var server = PreforkServer.Start($"worker_class = \"{workerClass}\"", workers: 2);
        var first = server.WaitForWorkers(2);
        using var load = Wrk.Start(server.Port, connections: 20, seconds: 14);
        for (int i = 2; i <= 11; i++)
        {
            Thread.Sleep(300);
            if (i == 11) File.WriteAllText(server.ConfigPath, File.ReadAllText(server.ConfigPath).Replace("workers = 2", "workers = 3"));
            server.Signal(Signum.SIGHUP);
            server.WaitForLog($"Ready: generation {i},", TimeSpan.FromSeconds(30));
        }
        var result = load.Wait();
        Assert.True(result.Requests > 1000, result.Output);
        Assert.True(result.Failures == 0, result + "\n" + string.Join("\n", server.Log.Split('\n').Where(l => l.Contains("WARN") || l.Contains("EROR"))));
        Assert.Contains("Ready: generation 11, 3 workers serving", server.Log);
        var last = server.WaitForWorkers(3);
        Assert.Empty(first.Intersect(last));
    }

    [Fact]
    public void HUP_applies_a_changed_worker_count_and_bind_and_refuses_a_bad_config()
    {
        using var server = PreforkServer.Start(workers: 2);
        server.WaitForWorkers(2);
        int extraPort = PreforkServer.FreePort();
        var original = File.ReadAllText(server.ConfigPath);
        File.WriteAllText(server.ConfigPath, original.Replace("workers = 2", "workers = 3")
            .Replace($"bind = [\"127.0.0.1:{server.Port}\"]", $"bind = [\"127.0.0.1:{server.Port}\", \"127.0.0.1:{extraPort}\"]")
            + "proc_name = \"renamed\"\n");
        server.Signal(Signum.SIGHUP);
        server.WaitForGeneration(2, TimeSpan.FromSeconds(30), workers: 3);
        // A setting HUP does not apply says so, and is indeed not applied.
        Assert.Contains("proc_name changed; it takes effect at the next start (or USR2), not on HUP", server.Log);
        Assert.Equal("prefork", File.ReadAllText($"/proc/{server.MasterPid}/comm").Trim());
        var pids = server.WaitForWorkers(3);
        Assert.Equal(200, RawHttp.Get(extraPort, "/").Status);

        File.WriteAllText(server.ConfigPath, original.Replace("workers = 2", "workers = \"lots\""));
        server.Signal(Signum.SIGHUP);
        server.WaitForLog("Reload refused, keeping the running configuration", TimeSpan.FromSeconds(10));
        Assert.Contains("'workers' = \"lots\"", server.Log);
        Assert.Equal(200, server.Get("/").Status);
        Assert.Equal(pids.Order(), server.WorkerPids().Order());
    }

    [Fact]
    public void USR2_execs_the_program_on_disk_in_place_keeping_the_pid_and_serving_throughout()
    {
        // A private copy of the build, so the test can replace prefork.dll under the running master.
        var bin = CopyOfBuild();
        try
        {
            // A flag whose name is not its setting's key: the new program's check must get it as given.
            using var server = PreforkServer.Start(workers: 2, executable: Path.Combine(bin, "prefork"), args: ["--log-level", "info"]);
            var before = server.WaitForWorkers(2);
            var dll = Path.Combine(bin, "prefork.dll");
            File.Copy(dll, dll + ".new");
            File.Move(dll + ".new", dll, overwrite: true); // a new inode: the running master maps the old one
            Assert.Contains("prefork.dll (deleted)", File.ReadAllText($"/proc/{server.MasterPid}/maps"));

            using var load = Wrk.Start(server.Port, connections: 20, seconds: 6);
            Thread.Sleep(1000);
            server.Signal(Signum.SIGUSR2);
            server.WaitForLog("Upgraded in place to prefork", TimeSpan.FromSeconds(60));
            server.WaitForGeneration(2, TimeSpan.FromSeconds(60));
            var result = load.Wait();

            Assert.False(server.Master.HasExited);
            var maps = File.ReadAllText($"/proc/{server.MasterPid}/maps");
            Assert.Contains(dll, maps);
            Assert.DoesNotContain("prefork.dll (deleted)", maps); // the master now runs the program on disk
            server.WaitForWorkers(2, also: pids => !pids.Intersect(before).Any());
            Assert.True(result.Failures == 0, result.ToString());
            Assert.Equal(200, server.Get("/").Status);
        }
        finally { Directory.Delete(bin, recursive: true); }
    }

    [Fact]
    public void USR2_with_a_broken_program_on_disk_is_refused_and_the_master_goes_on()
    {
        var bin = CopyOfBuild();
        try
        {
            using var server = PreforkServer.Start(workers: 1, executable: Path.Combine(bin, "prefork"));
            var before = server.WaitForWorkers(1);
            File.WriteAllText(Path.Combine(bin, "prefork.dll"), "not an assembly");
            server.Signal(Signum.SIGUSR2);
            server.WaitForLog("Upgrade refused, the running master goes on", TimeSpan.FromSeconds(60));
            Assert.Equal(200, server.Get("/").Status);
            Assert.Equal(before, server.WorkerPids());
        }
        finally { Directory.Delete(bin, recursive: true); }
    }

    [Fact]
    public async Task A_hung_request_gets_its_worker_aborted_after_timeout_and_the_log_names_the_request()
    {
        using var server = PreforkServer.Start("timeout = 4", workers: 1);
        var before = server.WaitForWorkers(1);
        var hung = Task.Run(() => { try { return server.Get("/slow?ms=60000").Status; } catch (IOException) { return -1; } });
        server.WaitForLog("WORKER TIMEOUT", TimeSpan.FromSeconds(20));
        Assert.Matches(@"WORKER TIMEOUT: worker 0 \(pid \d+\) spent [\d.]+ s on GET /slow \(timeout 4 s\)", server.Log);
        Assert.Equal(-1, await hung); // its connection died with the worker
        server.WaitForWorkers(1, also: p => !p.Contains(before[0]));
        Assert.Equal(200, server.Get("/").Status);
        server.WaitForLog("was killed by signal 6 (SIGABRT)", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void Max_requests_recycles_workers_under_load_without_failures()
    {
        using var server = PreforkServer.Start("max_requests = 300\nmax_requests_jitter = 50", workers: 2);
        var before = server.WaitForWorkers(2);
        using var load = Wrk.Start(server.Port, connections: 10, seconds: 6);
        var result = load.Wait();
        Assert.True(result.Failures == 0, result.ToString());
        // Request counts arrive with heartbeats: a recycle near the end of the load is logged just after.
        server.WaitForLog("Recycling worker", TimeSpan.FromSeconds(15), occurrences: 2);
        Assert.Matches(@"served \d+ requests \(max_requests (3[0-4]\d|350)\)", server.Log);
        server.WaitForWorkers(2, also: p => !p.Intersect(before).Any()); // every worker was recycled
    }

    [Fact]
    public void Boot_failures_back_off_and_HUP_with_a_fixed_app_recovers()
    {
        using var server = PreforkServer.Start("app = \"Prefork.SampleApp:Prefork.SampleApp.Missing\"", workers: 2, waitReady: false);
        server.WaitForLog("next attempt in 2 s", TimeSpan.FromSeconds(30));
        Assert.False(server.Master.HasExited);
        File.WriteAllText(server.ConfigPath, File.ReadAllText(server.ConfigPath).Replace("SampleApp.Missing", "SampleApp.SampleApplication"));
        server.Signal(Signum.SIGHUP);
        server.WaitForGeneration(2, TimeSpan.FromSeconds(30), workers: 2);
        Assert.Equal("Hello, World!", server.Get("/").BodyText);
    }

    [Fact]
    public void TTIN_and_TTOU_add_and_remove_workers_but_never_below_one()
    {
        using var server = PreforkServer.Start(workers: 2);
        server.WaitForWorkers(2);
        server.Signal(Signum.SIGTTIN);
        server.WaitForWorkers(3);
        // One at a time, each once the last was handled: two signals pending at once could merge into one.
        for (int i = 1; i <= 4; i++)
        {
            server.Signal(Signum.SIGTTOU);
            server.WaitForLog("Handling signal: TTOU", TimeSpan.FromSeconds(10), occurrences: i);
        }
        server.WaitForLog("Handling signal: TTOU; workers now 1", TimeSpan.FromSeconds(10), occurrences: 3); // 3 → 2 → 1 → 1 → 1
        server.WaitForWorkers(1);
        Thread.Sleep(1500);
        Assert.Single(server.WorkerPids());
        Assert.Equal(200, server.Get("/").Status);
    }

    [Fact]
    public void WINCH_retires_every_worker_and_HUP_brings_them_back()
    {
        using var server = PreforkServer.Start(workers: 2);
        server.WaitForWorkers(2);
        server.Signal(Signum.SIGWINCH);
        server.WaitForWorkers(0);
        Assert.False(server.Master.HasExited);
        server.Signal(Signum.SIGHUP);
        server.WaitForWorkers(2);
        server.WaitForGeneration(2, TimeSpan.FromSeconds(30));
        Assert.Equal(200, server.Get("/").Status);
    }

    [Fact]
    public void USR1_reopens_the_access_log_after_logrotate_moved_it()
    {
        using var server = PreforkServer.Start("accesslog = \"access.log\"", workers: 1);
        var log = Path.Combine(server.Directory, "access.log");
        server.Get("/first");
        Wait.ForFileToContain(log, "/first");
        File.Move(log, log + ".1");
        server.Signal(Signum.SIGUSR1);
        server.WaitForLog("reopening log files", TimeSpan.FromSeconds(10));
        // The worker reopened: it recreated the file.
        Assert.True(Wait.Until(() => File.Exists(log), TimeSpan.FromSeconds(30)), "access.log was not recreated");
        server.Get("/second");
        Wait.ForFileToContain(log, "/second");
        Assert.DoesNotContain("/second", File.ReadAllText(log + ".1"));
        Assert.Matches(@"127\.0\.0\.1 - - \[.+\] ""GET /second HTTP/1\.1"" 404 10 ""-"" ""-"" <\d+>", File.ReadAllText(log));
    }

    [Fact]
    public void The_masters_umask_applies_to_files_its_workers_create()
    {
        // The master sets it (Mono.Unix's umask) and the workers inherit it: 0666 less 0077 is 0600, where the default 022 gives 0644.
        using var server = PreforkServer.Start("umask = \"0077\"\naccesslog = \"access.log\"", workers: 1);
        var log = Path.Combine(server.Directory, "access.log");
        Assert.True(Wait.Until(() => File.Exists(log), TimeSpan.FromSeconds(30)), "access.log was not created");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(log));
    }

    [Fact]
    public void Hooks_run_with_the_event_in_their_environment()
    {
        var events = Path.Combine(Path.GetTempPath(), $"prefork-hooks-{Guid.NewGuid():N}.txt");
        var echo = $"echo \\\"$PREFORK_HOOK ${{PREFORK_WORKER_INDEX:-}}\\\" >> {events}";
        // worker_exit runs in the background and is slow here: on_exit must still come after it.
        var hooks = string.Join("\n", new[] { "on_starting", "when_ready", "on_reload", "worker_boot", "worker_exit", "on_exit" }
            .Select(h => $"{h} = \"{(h == "worker_exit" ? "sleep 0.5; " : "")}{echo}\""));
        using (var server = PreforkServer.Start(hooks, workers: 2))
        {
            server.Signal(Signum.SIGHUP);
            server.WaitForGeneration(2, TimeSpan.FromSeconds(30));
            server.Signal(Signum.SIGTERM);
            Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
        }
        var lines = File.ReadAllLines(events).Select(l => l.Trim()).ToList();
        Assert.Equal("on_starting", lines[0]);
        Assert.Equal("on_exit", lines[^1]);
        Assert.Single(lines, "when_ready");
        Assert.Single(lines, "on_reload");
        Assert.Equal(4, lines.Count(l => l.StartsWith("worker_boot ")));
        Assert.Equal(4, lines.Count(l => l.StartsWith("worker_exit "))); // 2 retired by HUP, 2 by TERM
        Assert.Contains("worker_boot 0", lines);
        Assert.Contains("worker_boot 1", lines);
        File.Delete(events);
    }

    [Fact]
    public void Proc_name_and_raw_env_reach_the_processes()
    {
        using var server = PreforkServer.Start("proc_name = \"pftest\"\nraw_env = [\"GREETING=hi there\"]", workers: 1);
        var worker = server.WaitForWorkers(1)[0];
        Assert.Equal("pftest", File.ReadAllText($"/proc/{server.MasterPid}/comm").Trim());
        Assert.Equal("pftest-w0", File.ReadAllText($"/proc/{worker}/comm").Trim());
        Assert.Contains("GREETING=hi there", File.ReadAllText($"/proc/{worker}/environ").Split('\0'));
        Assert.Contains("PREFORK_WORKER_INDEX=0", File.ReadAllText($"/proc/{worker}/environ").Split('\0'));
    }

    [RootFact] // only root can change user
    public void User_drops_privileges_in_workers_while_the_master_keeps_its_own()
    {
        using var server = PreforkServer.Start("user = \"nobody\"", workers: 1);
        var worker = server.WaitForWorkers(1)[0];
        Assert.Matches(@"Uid:\s+65534\s", File.ReadAllText($"/proc/{worker}/status"));
        Assert.Matches(@"Uid:\s+0\s", File.ReadAllText($"/proc/{server.MasterPid}/status"));
        Assert.Equal(200, server.Get("/").Status);
    }

    [Fact]
    public void A_pidfile_naming_a_live_process_is_refused()
    {
        var pidfile = Path.Combine(Path.GetTempPath(), $"prefork-{Guid.NewGuid():N}.pid");
        File.WriteAllText(pidfile, Environment.ProcessId + "\n"); // this test process is alive
        try
        {
            using var server = PreforkServer.Start($"pidfile = \"{pidfile}\"", workers: 1, waitReady: false);
            Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
            Assert.Equal(1, server.Master.ExitCode);
            Assert.Contains("which is running", server.Log);
            Assert.Equal(Environment.ProcessId.ToString(), File.ReadAllText(pidfile).Trim()); // not ours: left alone
        }
        finally { File.Delete(pidfile); }
    }

    /// <summary>A copy of the built prefork and its assemblies in a fresh folder.</summary>
    private static string CopyOfBuild()
    {
        var dir = Directory.CreateTempSubdirectory("prefork-bin").FullName;
        foreach (var file in Directory.GetFiles(AppContext.BaseDirectory))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        foreach (var sub in Directory.GetDirectories(AppContext.BaseDirectory, "runtimes"))
            CopyTree(sub, Path.Combine(dir, "runtimes"));
        File.SetUnixFileMode(Path.Combine(dir, "prefork"), (UnixFileMode)0b111_101_101);
        return dir;
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyTree(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
