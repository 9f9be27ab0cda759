using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Control;

/// <summary>`metrics_bind`: a real scrape of the master's own listener, the exposition format checked line by line, /ready and /live.</summary>
public sealed partial class MetricsTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public void The_metrics_listener_serves_well_formed_Prometheus_text_and_ready_follows_WINCH_and_HUP()
    {
        int metricsPort = PreforkServer.FreePort();
        using var server = PreforkServer.Start($"bind = [\"127.0.0.1:{{port}}\"]\nmetrics_bind = \"127.0.0.1:{metricsPort}\"", workers: 2);
        var pids = server.WaitForWorkers(2);
        for (int i = 0; i < 10; i++) Assert.Equal(200, server.Get("/").Status);
        Assert.Equal(400, server.Get("/bytes/x").Status);
        var post = RawHttp.Send(server.Port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
        Assert.Equal(200, post.Status);
        Assert.Equal(200, RawHttp.Send(server.Port, "BREW / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").Status);

        const string getOk = "http_server_request_duration_seconds_count{http_request_method=\"GET\",status_class=\"2xx\"}";
        string text = "";
        Assert.True(Wait.Until(() => Value(text = Scrape(metricsPort), "prefork_requests_total") >= 13 && Value(text, getOk) >= 10, Bound), text);
        var families = CheckFormat(text);
        foreach (var name in new[] { "prefork_requests_total", "prefork_workers", "http_server_request_duration_seconds", "http_server_active_requests",
                     "prefork_connections_active", "prefork_connections_rejected_total", "prefork_response_body_bytes_total", "prefork_worker_spawns_total", "prefork_worker_exits_total",
                     "prefork_worker_resident_memory_bytes", "prefork_worker_cpu_seconds_total", "prefork_worker_start_time_seconds",
                     "prefork_reloads_total", "prefork_generation", "prefork_listen_queue_length", "prefork_listen_queue_length_max" })
            Assert.True(families.ContainsKey(name), $"{name} is missing:\n{text}");
        Assert.Equal(2, Value(text, "prefork_workers{state=\"serving\"}"));
        // The histogram: one series per method and status class that had requests, unknown methods as _OTHER.
        Assert.Equal(10, Value(text, getOk));
        Assert.Equal(1, Value(text, "http_server_request_duration_seconds_count{http_request_method=\"GET\",status_class=\"4xx\"}"));
        Assert.Equal(1, Value(text, "http_server_request_duration_seconds_count{http_request_method=\"POST\",status_class=\"2xx\"}"));
        Assert.Equal(1, Value(text, "http_server_request_duration_seconds_count{http_request_method=\"_OTHER\",status_class=\"2xx\"}"));
        Assert.Equal(10, Value(text, "http_server_request_duration_seconds_bucket{http_request_method=\"GET\",status_class=\"2xx\",le=\"+Inf\"}"));
        Assert.True(Value(text, "http_server_request_duration_seconds_sum{http_request_method=\"GET\",status_class=\"2xx\"}") is > 0 and < 100, text);
        Assert.True(Value(text, "prefork_response_body_bytes_total") > 0, text);
        Assert.Equal(0, Value(text, "http_server_active_requests"));
        Assert.Equal(0, Value(text, "prefork_connections_rejected_total{reason=\"tls_handshake\"}"));
        Assert.Equal(1, Value(text, "prefork_generation"));
        Assert.Equal(2, Value(text, "prefork_worker_spawns_total"));
        Assert.Equal(2048, Value(text, $"prefork_listen_queue_length_max{{listener=\"http://127.0.0.1:{server.Port}\"}}"));
        Assert.All(pids, pid => Assert.True(Value(text, $"prefork_worker_resident_memory_bytes{{index=\"{Index(text, pid)}\",pid=\"{pid}\",state=\"serving\"}}") > 1_000_000));
        PromtoolAccepts(text); // Debian's prometheus package brings it (.ci/run installs it)

        var watch = Stopwatch.StartNew();
        for (int i = 0; i < 20; i++) Scrape(metricsPort);
        Console.WriteLine($"metrics scrape: {watch.Elapsed.TotalMilliseconds / 20:F2} ms each ({text.Length} bytes), 20 in a row");

        Assert.Equal(200, RawHttp.Get(metricsPort, "/live").Status);
        Assert.Equal(200, RawHttp.Get(metricsPort, "/ready").Status);
        Assert.Equal(404, RawHttp.Get(metricsPort, "/nope").Status);
        Assert.Equal(400, RawHttp.Send(metricsPort, "\u0001garbage\r\n\r\n").Status);
        server.Signal(Signum.SIGWINCH);
        Assert.True(Wait.Until(() => RawHttp.Get(metricsPort, "/ready").Status == 503, Bound));
        Assert.Contains("WINCH", RawHttp.Get(metricsPort, "/ready").BodyText);
        server.Signal(Signum.SIGHUP);
        Assert.True(Wait.Until(() => RawHttp.Get(metricsPort, "/ready").Status == 200, Bound), server.Log);
        text = Scrape(metricsPort);
        Assert.Equal(2, Value(text, "prefork_generation"));
        Assert.Equal(1, Value(text, "prefork_reloads_total"));
        Assert.True(Value(text, "prefork_requests_total") >= 13); // the replaced workers' requests are kept
        Assert.Equal(10, Value(text, getOk));                     // and so are their histograms
        Assert.True(Wait.Until(() => Value(text = Scrape(metricsPort), "prefork_worker_exits_total{reason=\"scale\"}") == 2, Bound), text); // WINCH retires to 0
        Assert.Equal(200, server.Get("/").Status);
    }

    [Fact]
    public void Idle_clients_holding_every_slot_of_the_metrics_listener_do_not_keep_probes_out()
    {
        int metricsPort = PreforkServer.FreePort();
        using var server = PreforkServer.Start($"metrics_bind = \"127.0.0.1:{metricsPort}\"", workers: 1);
        server.WaitForWorkers(1);
        Assert.True(Wait.Until(() => RawHttp.Get(metricsPort, "/ready").Status == 200, Bound));
        // Twenty connections that never send a request: more than the listener's 16 slots.
        var idle = Enumerable.Range(0, 20).Select(_ => RawHttp.Connect(metricsPort)).ToList();
        try
        {
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(200, RawHttp.Get(metricsPort, "/live", timeoutMs: 10_000).Status);
                Assert.Equal(200, RawHttp.Get(metricsPort, "/ready", timeoutMs: 10_000).Status);
            }
        }
        finally
        {
            idle.ForEach(s => s.Dispose());
        }
    }

    private static string Scrape(int port)
    {
        var response = RawHttp.Get(port, "/metrics");
        Assert.Equal(200, response.Status);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Header("Content-Type"));
        return response.BodyText;
    }

    private static double Value(string text, string series) =>
        text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ")) is { } line
            ? double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture) : double.NaN;

    private static string Index(string text, int pid) =>
        Regex.Match(text, $"index=\"(\\d+)\",pid=\"{pid}\"").Groups[1].Value;

    /// <summary>
    /// The text format's rules, as promtool checks them: HELP and TYPE once per family and before its
    /// samples, samples of a family together, valid names, escaped label values, no duplicate series,
    /// counters named *_total, numbers that parse, a final newline. Returns family → type.
    /// </summary>
    private static Dictionary<string, string> CheckFormat(string text)
    {
        Assert.EndsWith("\n", text);
        var types = new Dictionary<string, string>();
        var helped = new HashSet<string>();
        var series = new HashSet<string>();
        var closed = new HashSet<string>();
        string? current = null;
        foreach (var line in text[..^1].Split('\n'))
        {
            if (line.StartsWith("# HELP "))
            {
                var name = line.Split(' ')[2];
                Assert.Matches(MetricName(), name);
                Assert.True(helped.Add(name), "HELP twice: " + line);
                continue;
            }
            if (line.StartsWith("# TYPE "))
            {
                var parts = line.Split(' ');
                Assert.Equal(4, parts.Length);
                Assert.Contains(parts[3], new[] { "counter", "gauge", "histogram" });
                Assert.True(types.TryAdd(parts[2], parts[3]), "TYPE twice: " + line);
                if (parts[3] == "counter") Assert.EndsWith("_total", parts[2]);
                if (current is not null) closed.Add(current);
                current = parts[2];
                continue;
            }
            var m = SampleLine().Match(line);
            Assert.True(m.Success, "not a sample line: " + line);
            var family = m.Groups["name"].Value;
            if (current is not null && types[current] == "histogram" && family.StartsWith(current) && family[current.Length..] is "_bucket" or "_sum" or "_count")
                family = current;
            Assert.True(family == current && !closed.Contains(family), $"sample outside its family's block: {line}");
            Assert.True(series.Add(m.Groups["name"].Value + m.Groups["labels"].Value), "duplicate series: " + line);
            Assert.True(double.TryParse(m.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out _), "bad value: " + line);
        }
        Assert.Equal(types.Keys.Order(), helped.Order());
        return types;
    }

    private static void PromtoolAccepts(string text)
    {
        Assert.True(File.Exists("/usr/bin/promtool"), "promtool is missing: install Debian's prometheus package (.ci/run does)");
        var psi = new ProcessStartInfo("promtool", "check metrics") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        p.StandardInput.Write(text);
        p.StandardInput.Close();
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(30_000));
        Assert.True(p.ExitCode == 0, "promtool check metrics: " + output);
    }

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?<labels>\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*")*\})? (?<value>\S+)$""")]
    private static partial Regex SampleLine();
}

/// <summary>`statsd_host`: real datagrams on a UDP socket of the test's, with Gunicorn's names under statsd_prefix.</summary>
public sealed class StatsdTests
{
    [Fact]
    public void The_master_sends_requests_and_workers_to_statsd_each_second()
    {
        using var udp = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        udp.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        udp.ReceiveTimeout = 30_000;
        int port = ((System.Net.IPEndPoint)udp.LocalEndPoint!).Port;
        using var server = PreforkServer.Start($"statsd_host = \"127.0.0.1:{port}\"\nstatsd_prefix = \"gunicorn\"", workers: 2);
        server.WaitForWorkers(2);
        for (int i = 0; i < 5; i++) Assert.Equal(200, server.Get("/").Status);

        long requests = 0;
        var seen = new List<string>();
        var buffer = new byte[4096];
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (requests < 5 && DateTime.UtcNow < until)
        {
            var datagram = System.Text.Encoding.ASCII.GetString(buffer, 0, udp.Receive(buffer));
            seen.Add(datagram);
            foreach (var line in datagram.Split('\n').Where(l => l.StartsWith("gunicorn.requests:")))
                requests += long.Parse(line["gunicorn.requests:".Length..line.IndexOf('|')]);
        }
        Assert.True(requests >= 5, string.Join("\n--\n", seen));
        Assert.Contains(seen, d => d.Split('\n').Contains("gunicorn.workers:2|g"));
        Assert.Contains(seen, d => d.Split('\n').Contains("gunicorn.workers.serving:2|g"));
    }
}
