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

        // USR2 under probes on both of the master's own listeners: each must be answered, by the old
        // image or the new one. A refusal, or a connection closed without an answer, is a failure.
        var failures = new List<string>();
        int answered = 0;
        var stop = new CancellationTokenSource();
        var controlSocket = Path.Combine(server.Directory, "prefork.ctl");
        var prober = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    RawHttp.Get(metricsPort, "/live", timeoutMs: 60_000);  // any status is an answer
                    Prefork.Control.Ctl.Ask(controlSocket, new System.Text.Json.Nodes.JsonObject { ["command"] = "status" },
                        TimeSpan.FromSeconds(60));                          // "ok", or "starting; retry": an answer
                    answered++;
                }
                catch (Exception e) when (e is SocketException or IOException) { failures.Add(e.GetType().Name + ": " + e.Message); }
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
        Assert.True(answered > 0);
        Assert.True(failures.Count == 0, $"{failures.Count} of {failures.Count + answered} probes failed: {string.Join("; ", failures.Distinct())}");

        // Still drained in the new image, until told otherwise.
        Assert.True(server.Status()["draining"]!.GetValue<bool>());
        Assert.Equal(503, RawHttp.Get(metricsPort, "/ready").Status);
        var resume = server.Ctl("resume");
        Assert.True(resume.ExitCode == 0, resume.Output);
        Assert.True(Wait.Until(() => RawHttp.Get(metricsPort, "/ready").Status == 200, Bound));
        Assert.Equal(0, server.Ctl("status", "--ready").ExitCode);
    }
}
