using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>A worker boots on exactly its master's config; when it cannot boot, the master says why.</summary>
public sealed class WorkerBootTests
{
    [Fact]
    public void Multi_line_hooks_reach_the_workers_intact_and_they_serve()
    {
        using var server = PreforkServer.Start(""""
            on_reload = """
            echo "reloading"
            echo 'generation' "$PREFORK_GENERATION"
            """
            worker_boot = """
            echo "booted \t $PREFORK_WORKER_INDEX" >> hooks.log
            true
            """
            access_log_format = "%(h)s\t\"%(r)s\" \\ %(s)s"
            """", workers: 2);
        Assert.Equal(200, RawHttp.Get(server.Port, "/").Status);
        Assert.DoesNotContain("failed to boot", server.Log);
        var hooksLog = Path.Combine(server.Directory, "hooks.log");
        Assert.True(Wait.Until(() => File.Exists(hooksLog) && File.ReadAllLines(hooksLog).Length == 2, TimeSpan.FromSeconds(30)), "the worker_boot hook ran for both workers");
        Assert.Contains("booted \t 0", File.ReadAllLines(hooksLog));
    }

    [Fact]
    public void A_worker_that_fails_to_boot_tells_the_master_why()
    {
        // The master does not open the access log; each worker does, after its app has loaded. A
        // folder cannot be opened as one (missing folders on the way to a log are created).
        using var server = PreforkServer.Start("accesslog = \".\"", workers: 1, waitReady: false);
        server.WaitForLog("next attempt in 1 s", TimeSpan.FromSeconds(60));
        Assert.Matches(@"failed to boot and exited with code 4: IOException: cannot open log file [^\n]*: Is a directory", server.Log);
        Assert.False(server.Master.HasExited);
    }

    [Fact]
    public void A_worker_killed_from_outside_while_booting_is_replaced_at_once_and_is_no_boot_failure()
    {
        // A fault bench killing a worker every second used to starve capacity: each kill of a booting
        // worker counted as a boot failure and the next spawn waited 1, 2, 4 … s.
        using var server = PreforkServer.Start("", workers: 1);
        var seen = new HashSet<int>(server.WorkerPids());
        var killed = new List<int> { seen.Single() };
        Assert.Equal(0, Syscall.kill(killed[0], Signum.SIGKILL)); // booted: its replacements are killed while they boot
        for (int i = 0; i < 3; i++)
        {
            int fresh = 0;
            Assert.True(Wait.Until(() => (fresh = server.WorkerPids().FirstOrDefault(p => !seen.Contains(p))) != 0, TimeSpan.FromSeconds(30)),
                "a replacement is spawned\n" + server.Log);
            seen.Add(fresh);
            Syscall.kill(fresh, Signum.SIGKILL); // at once: a .NET worker takes far longer to load its app
            killed.Add(fresh);
        }
        foreach (var pid in killed)
            server.WaitForLog($"(pid {pid}) ", TimeSpan.FromSeconds(30)); // how it ended
        int last = 0;
        Assert.True(Wait.Until(() => (last = server.WorkerPids().FirstOrDefault(p => !seen.Contains(p))) != 0 && server.Log.Contains($"Booted worker 0 (pid {last})"),
            TimeSpan.FromSeconds(60)), "the last replacement boots\n" + server.Log);
        Assert.DoesNotContain("failed to boot", server.Log);
        Assert.DoesNotContain("next attempt in", server.Log);
        server.AssertLogged("was killed by signal 9 (SIGKILL) while booting, which the master did not send; replacing it at once");
        Assert.Equal(200, server.Get("/").Status);
    }

    [Fact]
    public void Relative_paths_stay_relative_to_a_relative_config_file_after_chdir()
    {
        var name = "prefork-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            // -c gateway.toml is relative to the folder the master starts in (the test's); chdir then leaves it.
            using var server = PreforkServer.Start($"chdir = \"/tmp\"\npidfile = \"{name}.pid\"\naccesslog = \"{name}.log\"", workers: 1, args: ["-c", "gateway.toml"]);
            Assert.Equal(200, RawHttp.Get(server.Port, "/").Status);
            Assert.True(File.Exists(Path.Combine(server.Directory, name + ".pid")), "the master's pidfile is beside the config file");
            Assert.True(File.Exists(Path.Combine(server.Directory, name + ".log")), "the worker's access log is beside the config file");
        }
        finally
        {
            File.Delete($"/tmp/{name}.pid"); // where they went wrong
            File.Delete($"/tmp/{name}.log");
        }
    }
}
