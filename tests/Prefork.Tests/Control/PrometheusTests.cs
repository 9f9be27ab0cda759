using Prefork.Tests.Support;

namespace Prefork.Tests.Control;

/// <summary>A real Prometheus (Debian's package) scrapes `metrics_bind` each second; its HTTP API must return the series.</summary>
public sealed class PrometheusTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public void A_real_Prometheus_scrapes_the_master_and_its_API_returns_requests_and_the_duration_histogram()
    {
        int metricsPort = PreforkServer.FreePort();
        using var server = PreforkServer.Start($"bind = [\"127.0.0.1:{{port}}\"]\nmetrics_bind = \"127.0.0.1:{metricsPort}\"", workers: 2);
        server.WaitForWorkers(2);
        for (int i = 0; i < 10; i++) Assert.Equal(200, server.Get("/").Status);
        for (int i = 0; i < 3; i++) Assert.Equal(200, server.Get("/slow?ms=30").Status);
        Assert.Equal(400, server.Get("/bytes/x").Status);

        using var prometheus = new Prometheus($"127.0.0.1:{metricsPort}");
        double Scalar(string promql) => prometheus.Query(promql) is [var only] ? only.Value : double.NaN;
        string Explain() => $"target: {prometheus.TargetHealth()}\n{prometheus.Log}";

        Assert.True(Wait.Until(() => Scalar("prefork_requests_total") >= 14, Bound), Explain());
        Assert.Equal(1, Scalar("up{job=\"prefork\"}"));
        Assert.True(Wait.Until(() => Scalar("http_server_request_duration_seconds_count{http_request_method=\"GET\",status_class=\"2xx\"}") >= 13, Bound), Explain());
        Assert.Equal(1, Scalar("http_server_request_duration_seconds_count{http_request_method=\"GET\",status_class=\"4xx\"}"));
        // Three requests slept 30 ms: no more than 11 can fall in le="0.025", and the 99th percentile is above it.
        var buckets = prometheus.Query("sum by (le) (http_server_request_duration_seconds_bucket)").ToDictionary(s => s.Labels["le"], s => s.Value);
        Assert.Equal(15, buckets.Count);
        Assert.Equal(14, buckets["+Inf"]);
        Assert.True(buckets["0.025"] <= 11, string.Join(", ", buckets));
        double p99 = Scalar("histogram_quantile(0.99, sum by (le) (http_server_request_duration_seconds_bucket))");
        Assert.True(p99 is >= 0.025 and <= 10, $"p99 {p99}");
        Assert.True(Scalar("prefork_response_body_bytes_total") > 0, Explain());
        Assert.Equal(2, Scalar("sum(prefork_workers{state=\"serving\"})"));
        Assert.Equal(0, Scalar("http_server_active_requests"));

        // Every query of deploy/grafana-dashboard.json is one this Prometheus accepts and answers with data.
        using var dashboard = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Repo.File("deploy/grafana-dashboard.json")));
        foreach (var panel in dashboard.RootElement.GetProperty("panels").EnumerateArray())
            foreach (var target in panel.GetProperty("targets").EnumerateArray())
            {
                var expr = target.GetProperty("expr").GetString()!.Replace("$instance", ".+");
                Assert.True(Wait.Until(() => prometheus.Query(expr).Count > 0, Bound), $"{panel.GetProperty("title")}: no data for {expr}");
            }
    }
}
