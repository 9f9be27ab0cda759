using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>HUP after HUP while wrk keeps every worker busy, in each worker class: a class of its own so it runs beside the other master tests.</summary>
[LongClass]
public sealed class HupUnderLoadTests
{
    // Each HUP is one more try at the hand-off from old workers to new under load; the last one also
    // changes the config. Five tries (the first four on the same config) catch what ten did, at half the time.
    private const int Reloads = 5;

    [Theory]
    [InlineData("sync")]
    [InlineData("threads")]   // keep-alive connections held across the reload
    [InlineData("epoll")]
    public void HUPs_under_load_drop_no_request_replace_every_worker_and_apply_the_new_config(string workerClass)
    {
        using var server = PreforkServer.Start($"worker_class = \"{workerClass}\"", workers: 2);
        var first = server.WaitForWorkers(2);
        // Load for as long as the reloads take, however slow the machine: stopped once the last generation serves.
        using var load = Wrk.Start(server.Port, connections: 20, seconds: 110, paceMs: 5);
        int last = 1 + Reloads;
        for (int generation = 2; generation <= last; generation++)
        {
            Thread.Sleep(300); // some load on each generation before the next HUP
            if (generation == last) File.WriteAllText(server.ConfigPath, File.ReadAllText(server.ConfigPath).Replace("workers = 2", "workers = 3"));
            server.Signal(Signum.SIGHUP);
            server.WaitForGeneration(generation, TimeSpan.FromSeconds(90)); // as long as a first boot may take on a loaded machine
        }
        Thread.Sleep(300); // and on the last one
        var result = load.Stop();
        Assert.True(result.Requests > 500, result.Output);
        Assert.True(result.Failures == 0, result + "\n" + string.Join("\n", server.Log.Split('\n').Where(l => l.Contains("WARN") || l.Contains("EROR"))));
        var status = server.Status();
        Assert.Equal(last, status["generation"]!.GetValue<int>());
        Assert.Equal(3, status["target_workers"]!.GetValue<int>());
        var now = server.WaitForWorkers(3);
        Assert.Empty(first.Intersect(now));
    }
}
