using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>HUP and WINCH: a new config applied or refused, workers retired and brought back, boot failures recovered, hooks. Real processes, real signals.</summary>
public sealed class ReloadTests
{
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
        server.AssertLogged("proc_name changed; it takes effect at the next start (or USR2), not on HUP");
        Assert.Equal("prefork", File.ReadAllText($"/proc/{server.MasterPid}/comm").Trim());
        var pids = server.WaitForWorkers(3);
        Assert.Equal(200, RawHttp.Get(extraPort, "/").Status);

        File.WriteAllText(server.ConfigPath, original.Replace("workers = 2", "workers = \"lots\""));
        server.Signal(Signum.SIGHUP);
        server.WaitForLog("Reload refused, keeping the running configuration", TimeSpan.FromSeconds(10));
        server.AssertLogged("'workers' = \"lots\"");
        Assert.Equal(200, server.Get("/").Status);
        Assert.Equal(pids.Order(), server.WorkerPids().Order());
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
}
