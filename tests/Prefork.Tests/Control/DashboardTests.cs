using System.Text.Json;
using System.Text.RegularExpressions;
using Prefork.Control;
using Prefork.Metrics;
using Prefork.Tests.Support;

namespace Prefork.Tests.Control;

/// <summary>deploy/grafana-dashboard.json graphs only series the metrics listener serves.</summary>
public sealed partial class DashboardTests
{
    [Fact]
    public void Every_series_the_dashboard_queries_is_one_the_master_exposes()
    {
        var worker = new WorkerStatus(10, 0, 1, WorkerStates.Serving, false, 5, "", -1, 1, 1, 0, DateTimeOffset.UnixEpoch, 1, 0, "");
        var snapshot = new StatusSnapshot(1, "test", 1, DateTimeOffset.UnixEpoch, 1, "serving", true, false, 1, "sync", [worker],
            [new ListenerStatus("http://127.0.0.1:8000", 3, 0, 128)], new MasterCounters(5, 1, new Dictionary<string, long>(), 0), "", null);
        // Families by their TYPE lines; a histogram's series are its _bucket, _sum and _count.
        var exposed = Exposition.Render(snapshot).Split('\n').Where(l => l.StartsWith("# TYPE ")).Select(l => l.Split(' '))
            .SelectMany(t => t[3] == "histogram" ? new[] { t[2] + "_bucket", t[2] + "_sum", t[2] + "_count" } : [t[2]]).ToHashSet();

        using var dashboard = JsonDocument.Parse(File.ReadAllText(Repo.File("deploy/grafana-dashboard.json")));
        var queried = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray())
            .SelectMany(t => SeriesName().Matches(t.GetProperty("expr").GetString()!).Select(m => m.Value))
            .ToHashSet();
        Assert.NotEmpty(queried);
        Assert.Empty(queried.Except(exposed));
    }

    [GeneratedRegex(@"\b(prefork|http_server)_[a-z_]+\b")]
    private static partial Regex SeriesName();
}
