using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>The master bounds its workers: a hung request's worker aborted after timeout, max_requests recycling, TTIN/TTOU. Real processes, real signals.</summary>
public sealed class WorkerLimitTests
{
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
        // Load until every worker has been recycled under it, however long that takes here.
        using var load = Wrk.Start(server.Port, connections: 10, seconds: 110, paceMs: 5);
        server.WaitForWorkers(2, TimeSpan.FromSeconds(100), also: p => !p.Intersect(before).Any());
        var result = load.Stop();
        Assert.True(result.Failures == 0, result.ToString());
        server.WaitForLog("Recycling worker", TimeSpan.FromSeconds(15), occurrences: 2);
        Assert.Matches(@"served \d+ requests \(max_requests (3[0-4]\d|350)\)", server.Log);
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
        Assert.Equal(1, server.Status()["target_workers"]!.GetValue<int>()); // the master's own count: one, not zero
        Assert.Equal(200, server.Get("/").Status);
    }
}
