using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Mono.Unix.Native;

namespace Prefork.Tests.Support;

/// <summary>
/// Debian's `prometheus`, run by the test on 127.0.0.1 with a config of its own (one scrape job,
/// scraping every second) and its database in a temp folder. Stopped by pid (TERM) when disposed.
/// </summary>
public sealed class Prometheus : IDisposable
{
    public const string Executable = "/usr/bin/prometheus";
    private readonly Process _process;
    private readonly CapturedOutput _output;
    private readonly string _dir;
    public int Port { get; }
    public string Log => _output.Text;

    /// <summary>Starts it scraping http://<paramref name="target"/>/metrics each second.</summary>
    public Prometheus(string target)
    {
        if (!File.Exists(Executable)) throw new InvalidOperationException($"{Executable} is missing: install Debian's prometheus package (.ci/run does)");
        _dir = Directory.CreateTempSubdirectory("prefork-prometheus-").FullName;
        Port = PreforkServer.FreePort();
        var config = Path.Combine(_dir, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: prefork
                static_configs:
                  - targets: ["{target}"]
            """);
        var psi = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _dir };
        foreach (var a in new[] { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(_dir, "data")}",
                     $"--web.listen-address=127.0.0.1:{Port}" })
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _output = new CapturedOutput(_process);
        if (!Wait.Until(Ready, TimeSpan.FromSeconds(60)))
            throw new TimeoutException($"prometheus not ready on {Port}: {Log}");
    }

    private bool Ready()
    {
        if (_process.HasExited) throw new InvalidOperationException($"prometheus exited ({_process.ExitCode}): {Log}");
        try { return RawHttp.Get(Port, "/-/ready", 2000).Status == 200; }
        catch (SocketException) { return false; }
    }

    /// <summary>An instant query through the HTTP API: each series's labels and value.</summary>
    public List<(Dictionary<string, string> Labels, double Value)> Query(string promql)
    {
        var response = RawHttp.Get(Port, "/api/v1/query?query=" + Uri.EscapeDataString(promql), 10_000);
        using var json = JsonDocument.Parse(response.Body);
        if (json.RootElement.GetProperty("status").GetString() != "success") throw new InvalidOperationException(response.BodyText);
        return json.RootElement.GetProperty("data").GetProperty("result").EnumerateArray()
            .Select(r => (r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
                          double.Parse(r.GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();
    }

    /// <summary>The scrape target's health as Prometheus last saw it ("up", "down", "unknown") and its last error.</summary>
    public string TargetHealth()
    {
        using var json = JsonDocument.Parse(RawHttp.Get(Port, "/api/v1/targets", 10_000).Body);
        return string.Join("; ", json.RootElement.GetProperty("data").GetProperty("activeTargets").EnumerateArray()
            .Select(t => $"{t.GetProperty("health").GetString()} {t.GetProperty("lastError").GetString()}"));
    }

    public void Dispose()
    {
        Processes.Stop(_process, Signum.SIGTERM, TimeSpan.FromSeconds(10), []);
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
