using System.Net.Sockets;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.AspNetCore;

/// <summary>How the ASP.NET Core sample stops under Prefork: on the stop signal, within the master's graceful timeout, when its master is gone. Its own class so it runs beside SampleWebTests.</summary>
public sealed class SampleWebStopTests
{
    private static readonly TimeSpan Bound = SampleWebProcess.Bound;

    [Fact]
    public async Task Stop_signal_says_stopping_and_finishes_the_request_in_flight()
    {
        using var notify = new NotifySocket(@abstract: true);
        using var app = SampleWebProcess.UnderPrefork(notify, new Dictionary<string, string> { ["PREFORK_GRACEFUL_TIMEOUT"] = "30" });
        app.WaitUntilServing();
        var slow = Task.Run(() => app.Get("/slow?ms=2000"));
        notify.WaitUntil(_ => SampleWebTests.Heartbeats(notify).Any(h => NotifySocket.Field(h, "PREFORK_PATH") == "/slow"), Bound, "/slow in flight", () => app.Log);

        app.Signal(Signum.SIGTERM);
        notify.WaitUntil(m => m.Contains("STOPPING=1"), Bound, "STOPPING=1", () => app.Log);
        Assert.Equal("slept 2000 ms", (await slow).BodyText);
        Assert.True(app.WaitForExit(Bound), "the app did not exit after its last request:\n" + app.Log);
        Assert.Equal(0, app.Process.ExitCode);
    }

    [Fact]
    public async Task The_masters_graceful_timeout_bounds_the_stop()
    {
        using var notify = new NotifySocket(@abstract: true);
        using var app = SampleWebProcess.UnderPrefork(notify, new Dictionary<string, string> { ["PREFORK_GRACEFUL_TIMEOUT"] = "1" });
        app.WaitUntilServing();
        var slow = Task.Run(() => { try { return app.Get("/slow?ms=60000", timeoutMs: 90_000).Status; } catch (Exception e) when (e is IOException or SocketException) { return -1; } });
        notify.WaitUntil(_ => SampleWebTests.Heartbeats(notify).Any(h => NotifySocket.Field(h, "PREFORK_PATH") == "/slow"), Bound, "/slow in flight", () => app.Log);

        app.Signal(Signum.SIGTERM);
        // ASP.NET Core's own default is 30 s; with PREFORK_GRACEFUL_TIMEOUT=1 the host gives up on /slow after 1 s.
        Assert.True(app.WaitForExit(TimeSpan.FromSeconds(20)), "still running 20 s after TERM with a graceful timeout of 1 s:\n" + app.Log);
        Assert.NotEqual(200, await slow.WaitAsync(Bound));
    }

    [Fact]
    public void Stops_when_its_master_is_gone()
    {
        using var notify = new NotifySocket(@abstract: true);
        // The test process is the parent; a PREFORK_MASTER_PID that is not the parent is a master that died (we were reparented).
        int someoneElse = Environment.ProcessId + 1_000_000;
        using var app = SampleWebProcess.UnderPrefork(notify, masterPid: someoneElse);
        app.Knock();
        Assert.True(app.WaitForExit(Bound), "the app outlived its master:\n" + app.Log);
        Assert.Contains($"The Prefork master (pid {someoneElse}) is gone (our parent is now pid {Environment.ProcessId}); stopping", app.Log);
        Assert.Contains("STOPPING=1", notify.Messages);
    }
}
