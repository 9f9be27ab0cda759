using System.Net.Sockets;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Control;

/// <summary>
/// `prefork ctl drain`: a host leaves its load balancer's rotation (readiness says no) while its workers
/// go on serving, and stays out across an in-place upgrade, whose exec keeps the master's own listeners
/// open: probes and `prefork ctl` wait for a moment instead of being refused.
/// </summary>
public sealed class DrainTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>The status, or null while the new image has not published its first one ("starting; retry").</summary>
    private static System.Text.Json.Nodes.JsonObject? TryStatus(PreforkServer server)
    {
        try { return server.Status(); }
        catch (IOException) { return null; }
    }

    [Fact]
    public void Drain_takes_the_host_out_of_rotation_while_it_serves_and_an_upgrade_refuses_no_probe_and_keeps_it_drained()
    {
        int metricsPort = PreforkServer.FreePort();
        using var server = PreforkServer.Start($"bind = [\"127.0.0.1:{{port}}\"]\nmetrics_bind = \"127.0.0.1:{metricsPort}\"", workers: 2);
        Assert.True(Wait.Until(() => RawHttp.Get(metricsPort, "/ready").Status == 200, Bound));

        var drain = server.Ctl("drain");
        Assert.True(drain.ExitCode == 0, drain.Output);
        var ready = RawHttp.Get(metricsPort, "/ready");
        Assert.Equal(503, ready.Status);
        Assert.Contains("draining", ready.BodyText);
        Assert.Equal(1, server.Ctl("status", "--ready").ExitCode);
        Assert.Contains("draining", server.Ctl("status").Output);
        for (int i = 0; i < 10; i++) Assert.Equal(200, server.Get("/").Status); // out of rotation, not out of service

        // USR2 under probes on both of the master's own listeners.
        int refused = 0, probes = 0;
        var stop = new CancellationTokenSource();
        var prober = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    RawHttp.Get(metricsPort, "/live", timeoutMs: 60_000);
                    server.Status();
                    probes++;
                }
                catch (SocketException) { refused++; }        // nobody listening: what the hand-over prevents
                catch (IOException) { probes++; }             // answered, e.g. "the master is starting; retry"
                Thread.Sleep(20);
            }
        });
        prober.Start();
        server.Signal(Signum.SIGUSR2);
        server.WaitForLog("Upgraded in place to prefork", Bound);
        Assert.True(Wait.Until(() => TryStatus(server) is { } s && s["generation"]!.GetValue<int>() == 2
            && s["workers"]!.AsArray().Count(w => w!["generation"]!.GetValue<int>() == 2 && w["state"]!.ToString() == "serving") == 2, Bound), server.Log);
        stop.Cancel();
        Assert.True(prober.Join(Bound));
        Assert.True(probes > 0);
        Assert.Equal(0, refused);

        // Still drained in the new image, until told otherwise.
        Assert.True(server.Status()["draining"]!.GetValue<bool>());
        Assert.Equal(503, RawHttp.Get(metricsPort, "/ready").Status);
        var resume = server.Ctl("resume");
        Assert.True(resume.ExitCode == 0, resume.Output);
        Assert.True(Wait.Until(() => RawHttp.Get(metricsPort, "/ready").Status == 200, Bound));
        Assert.Equal(0, server.Ctl("status", "--ready").ExitCode);
    }
}
