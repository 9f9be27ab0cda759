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
}
