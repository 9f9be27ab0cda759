using System.Text.RegularExpressions;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>The files in deploy/, checked by the tools that will read them on a server.</summary>
public sealed class DeployFilesTests
{
    [Fact]
    public void Systemd_units_pass_systemd_analyze_verify()
    {
        // verify checks that ExecStart's program exists: point it at the prefork built beside the tests.
        var dir = Directory.CreateTempSubdirectory("prefork-units-").FullName;
        try
        {
            var service = File.ReadAllText(Repo.File("deploy/prefork.service"));
            Assert.Contains("ExecStart=/opt/prefork/prefork ", service);
            File.WriteAllText(Path.Combine(dir, "prefork.service"), service.Replace("ExecStart=/opt/prefork/prefork ", $"ExecStart={PreforkServer.Executable} "));
            File.Copy(Repo.File("deploy/prefork.socket"), Path.Combine(dir, "prefork.socket"));
            var (code, output) = Repo.Run("systemd-analyze", ["verify", "--man=no", Path.Combine(dir, "prefork.socket"), Path.Combine(dir, "prefork.service")], dir);
            Assert.True(code == 0, output);
            // Unknown or unparsable lines are only warnings (exit 0): any output is a failure.
            Assert.Equal("", output.Trim());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void The_service_stops_gracefully_within_its_timeout()
    {
        var service = File.ReadAllText(Repo.File("deploy/prefork.service"));
        var config = File.ReadAllText(Repo.File("deploy/gateway.toml"));
        int stopSec = int.Parse(Regex.Match(service, @"^TimeoutStopSec=(\d+)$", RegexOptions.Multiline).Groups[1].Value);
        int graceful = int.Parse(Regex.Match(config, @"^graceful_timeout = (\d+)$", RegexOptions.Multiline).Groups[1].Value);
        Assert.True(stopSec > graceful, $"TimeoutStopSec={stopSec} must exceed graceful_timeout={graceful}");
        Assert.Contains("KillSignal=SIGTERM", service);
        Assert.Contains("ExecReload=/bin/kill -HUP $MAINPID", service);
        // The example config is valid as shipped.
        var (code, output) = PreforkServer.RunToExit("--print-config", "-c", Repo.File("deploy/gateway.toml"));
        Assert.True(code == 0, output);
    }

    [Fact]
    public void Logrotate_rotates_the_logs_and_USR1_makes_prefork_write_to_new_files()
    {
        var shipped = File.ReadAllText(Repo.File("deploy/logrotate.d/prefork"));
        var (check, checkOutput) = Repo.Run("logrotate", ["--debug", Repo.File("deploy/logrotate.d/prefork")]);
        Assert.True(check == 0 && !checkOutput.Contains("error"), checkOutput);

        using var server = PreforkServer.Start("accesslog = \"access.log\"\nerrorlog = \"error.log\"", workers: 2, waitReady: false);
        var logs = server.Directory;
        Wait.ForFileToContain(Path.Combine(logs, "error.log"), "Ready:");
        // The shipped file, aimed at this server: its log folder, and USR1 to its master by pid.
        var conf = shipped.Replace("/var/log/prefork/*.log", Path.Combine(logs, "*.log"));
        conf = Regex.Replace(conf, @"^\s*systemctl kill .*USR1 prefork\.service.*$", $"        kill -USR1 {server.MasterPid}", RegexOptions.Multiline);
        Assert.Contains($"kill -USR1 {server.MasterPid}", conf);
        var confPath = Path.Combine(Path.GetTempPath(), $"prefork-logrotate-{Guid.NewGuid():N}.conf");
        File.WriteAllText(confPath, conf);
        try
        {
            Assert.Equal(200, server.Get("/?before-rotation").Status);
            Wait.ForFileToContain(Path.Combine(logs, "access.log"), "?before-rotation");

            var (code, output) = Repo.Run("logrotate", ["--force", "--state", confPath + ".state", confPath]);
            Assert.True(code == 0, output);
            Assert.Contains("?before-rotation", File.ReadAllText(Path.Combine(logs, "access.log.1")));

            // USR1 is handled asynchronously: each worker reopens when it gets it, so ask until both have.
            var until = DateTime.UtcNow.AddSeconds(30);
            var seen = new HashSet<int>();
            while (DateTime.UtcNow < until && seen.Count < 2)
            {
                server.Get("/?after-rotation");
                var accessLog = Path.Combine(logs, "access.log");
                if (File.Exists(accessLog))
                    foreach (var line in File.ReadAllLines(accessLog).Where(l => l.Contains("?after-rotation")))
                        seen.Add(int.Parse(line.Split(' ')[^1].Trim('<', '>')));
                Thread.Sleep(50);
            }
            Assert.Equal(server.WaitForWorkers(2).Order(), seen.Order());
            // The master reopened its error log too: it logged USR1 to the old file, what follows goes to the new one.
            Assert.Contains("Handling signal: USR1", File.ReadAllText(Path.Combine(logs, "error.log.1")));
            server.Signal(Signum.SIGTTIN);
            Wait.ForFileToContain(Path.Combine(logs, "error.log"), "Handling signal: TTIN");
        }
        finally
        {
            File.Delete(confPath);
            File.Delete(confPath + ".state");
        }
    }
}
