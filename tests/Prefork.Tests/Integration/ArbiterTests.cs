using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>The master as a supervisor: USR1, umask, proc_name and raw_env, user, pidfile (HUP, USR2, WINCH, TTIN/TTOU, hooks and reloads under load have classes of their own). Real processes, real signals.</summary>
public sealed class ArbiterTests
{
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
        // The worker reopens: it creates the new file, then moves it onto its log's fd (dup3). A request
        // between the two still goes to the old file, so ask until one lands in the new file; after
        // that, nothing may go to the old one.
        Assert.True(Wait.Until(() => { server.Get("/second"); return File.Exists(log) && File.ReadAllText(log).Contains("/second"); },
            TimeSpan.FromSeconds(30)), "no request reached a recreated access.log");
        server.Get("/third");
        Wait.ForFileToContain(log, "/third");
        Assert.DoesNotContain("/third", File.ReadAllText(log + ".1"));
        Assert.Contains("/first", File.ReadAllText(log + ".1"));
        Assert.Matches(@"127\.0\.0\.1 - - \[.+\] ""GET /third HTTP/1\.1"" 404 10 ""-"" ""-"" <\d+>", File.ReadAllText(log));
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
    public void Proc_name_and_raw_env_reach_the_processes()
    {
        using var server = PreforkServer.Start("proc_name = \"pftest\"\nraw_env = [\"GREETING=hi there\"]", workers: 1);
        var worker = server.WaitForWorkers(1)[0];
        Assert.Equal("pftest", File.ReadAllText($"/proc/{server.MasterPid}/comm").Trim());
        Assert.Equal("pftest-w0", File.ReadAllText($"/proc/{worker}/comm").Trim());
        Assert.Contains("GREETING=hi there", File.ReadAllText($"/proc/{worker}/environ").Split('\0'));
        Assert.Contains("PREFORK_WORKER_INDEX=0", File.ReadAllText($"/proc/{worker}/environ").Split('\0'));
    }

    [Fact]
    public void Epoll_workers_get_a_larger_gen0_budget_unless_the_environment_sets_one()
    {
        static string[] EnvironmentOf(PreforkServer server) => File.ReadAllText($"/proc/{server.WaitForWorkers(1)[0]}/environ").Split('\0');
        using (var epoll = PreforkServer.Start("worker_class = \"epoll\"", workers: 1))
            Assert.Contains("DOTNET_GCgen0size=0x2000000", EnvironmentOf(epoll));
        using (var own = PreforkServer.Start("worker_class = \"epoll\"\nraw_env = [\"DOTNET_GCgen0size=0x800000\"]", workers: 1))
        {
            var environment = EnvironmentOf(own);
            Assert.Contains("DOTNET_GCgen0size=0x800000", environment);
            Assert.DoesNotContain("DOTNET_GCgen0size=0x2000000", environment);
        }
        using (var threads = PreforkServer.Start("worker_class = \"threads\"", workers: 1))
            Assert.DoesNotContain(EnvironmentOf(threads), e => e.StartsWith("DOTNET_GCgen0size=", StringComparison.Ordinal));
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
            server.AssertLogged("which is running");
            Assert.Equal(Environment.ProcessId.ToString(), File.ReadAllText(pidfile).Trim()); // not ours: left alone
        }
        finally { File.Delete(pidfile); }
    }
}
