using System.Globalization;
using System.Text;
using Prefork.Control;
using Prefork.Protocol;

namespace Prefork.Metrics;

/// <summary>
/// The master's snapshot in Prometheus' text exposition format (version 0.0.4): counters from its
/// own bookkeeping and from the workers' heartbeats (both survive worker replacement: the master adds
/// what exited workers last reported), per-worker RSS and CPU from /proc, listener queues from
/// TCP_INFO. Per-request series come from gateway workers only; command workers report none.
/// </summary>
public static class Exposition
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Every exit reason the master labels, so each series exists (at 0) before its first exit.</summary>
    public static readonly IReadOnlyList<string> ExitReasons =
        ["crash", "timeout", "boot_failure", "max_requests", "memory", "age", "reload", "scale", "ctl", "signal", "shutdown"];

    public static string Render(StatusSnapshot s)
    {
        var sb = new StringBuilder(4096);
        Family(sb, "prefork_build_info", "gauge", "The running prefork's version.");
        Sample(sb, "prefork_build_info", [("version", s.Version)], 1);
        Family(sb, "prefork_requests_total", "counter", "Requests served by all workers over the master's life, those of replaced workers included.");
        Sample(sb, "prefork_requests_total", [], s.Counters.Requests);
        Family(sb, "prefork_workers", "gauge", "Worker processes by state.");
        foreach (var state in WorkerStates.All) Sample(sb, "prefork_workers", [("state", state)], s.WorkersByState[state]);
        Family(sb, "prefork_workers_target", "gauge", "The number of workers the master keeps (workers, scale, TTIN/TTOU).");
        Sample(sb, "prefork_workers_target", [], s.TargetWorkers);
        Family(sb, "prefork_ready", "gauge", "1 when the current generation serves at full strength (what GET /ready answers 200 for).");
        Sample(sb, "prefork_ready", [], s.Ready ? 1 : 0);
        Family(sb, "prefork_worker_spawns_total", "counter", "Worker processes started.");
        Sample(sb, "prefork_worker_spawns_total", [], s.Counters.WorkerSpawns);
        Family(sb, "prefork_worker_exits_total", "counter", "Worker processes that exited, by why.");
        foreach (var reason in ExitReasons.Union(s.Counters.ExitsByReason.Keys))
            Sample(sb, "prefork_worker_exits_total", [("reason", reason)], s.Counters.ExitsByReason.GetValueOrDefault(reason));
        Family(sb, "prefork_reloads_total", "counter", "Reloads accepted (HUP or prefork ctl reload).");
        Sample(sb, "prefork_reloads_total", [], s.Counters.Reloads);
        Family(sb, "prefork_generation", "gauge", "The current generation of workers (1 at start, +1 on each reload or upgrade).");
        Sample(sb, "prefork_generation", [], s.Generation);
        Family(sb, "prefork_master_start_time_seconds", "gauge", "When the master started, in seconds since the Unix epoch.");
        Sample(sb, "prefork_master_start_time_seconds", [], s.StartedAt.ToUnixTimeMilliseconds() / 1000.0);

        RenderRequests(sb, s.Requests);

        Family(sb, "prefork_worker_resident_memory_bytes", "gauge", "Resident memory (RSS) of each worker.");
        foreach (var w in s.Workers) Sample(sb, "prefork_worker_resident_memory_bytes", Labels(w), w.ResidentBytes);
        Family(sb, "prefork_worker_cpu_seconds_total", "counter", "User and system CPU time of each worker.");
        foreach (var w in s.Workers) Sample(sb, "prefork_worker_cpu_seconds_total", Labels(w), w.CpuSeconds);
        Family(sb, "prefork_worker_start_time_seconds", "gauge", "When each worker started, in seconds since the Unix epoch.");
        foreach (var w in s.Workers) Sample(sb, "prefork_worker_start_time_seconds", Labels(w), w.StartedAt.ToUnixTimeMilliseconds() / 1000.0);
        Family(sb, "prefork_worker_requests", "gauge", "Requests each worker has served (it starts again at 0 when the worker is replaced; see prefork_requests_total).");
        foreach (var w in s.Workers) Sample(sb, "prefork_worker_requests", Labels(w), w.Requests);

        Family(sb, "prefork_listen_queue_length", "gauge", "Connections waiting in a TCP listener's accept queue (TCP_INFO).");
        foreach (var l in s.Listeners.Where(l => l.QueueLength is not null)) Sample(sb, "prefork_listen_queue_length", [("listener", l.Address)], l.QueueLength!.Value);
        Family(sb, "prefork_listen_queue_length_max", "gauge", "The accept queue's limit (the backlog as the kernel applies it).");
        foreach (var l in s.Listeners.Where(l => l.QueueMax is not null)) Sample(sb, "prefork_listen_queue_length_max", [("listener", l.Address)], l.QueueMax!.Value);
        return sb.ToString();
    }

    /// <summary>
    /// The per-request series, OpenTelemetry's names: a duration histogram per method and status class
    /// (series with no request yet are left out), requests and connections open now, bytes, refusals.
    /// </summary>
    private static void RenderRequests(StringBuilder sb, RequestCounts c)
    {
        const string duration = "http_server_request_duration_seconds";
        Family(sb, duration, "histogram", "Duration of HTTP requests served by the workers, from the request head read to the response written, by method and status class.");
        for (int m = 0; m < RequestCounts.Methods.Length; m++)
            for (int k = 0; k < RequestCounts.Classes.Length; k++)
            {
                int series = RequestCounts.Series(m, k);
                long count = c.Count(series);
                if (count == 0) continue;
                (string, string) method = ("http_request_method", RequestCounts.Methods[m]), statusClass = ("status_class", RequestCounts.Classes[k]);
                long cumulative = 0;
                for (int b = 0; b < RequestCounts.Slots; b++)
                {
                    cumulative += c.Buckets[series * RequestCounts.Slots + b];
                    var le = b < RequestCounts.Bounds.Length ? RequestCounts.Bounds[b].ToString("R", CultureInfo.InvariantCulture) : "+Inf";
                    Sample(sb, duration + "_bucket", [method, statusClass, ("le", le)], cumulative);
                }
                Sample(sb, duration + "_sum", [method, statusClass], c.SumMicros[series] / 1e6);
                Sample(sb, duration + "_count", [method, statusClass], count);
            }
        Family(sb, "http_server_active_requests", "gauge", "Requests being served now, over all workers (at their last heartbeat).");
        Sample(sb, "http_server_active_requests", [], c.ActiveRequests);
        Family(sb, "prefork_connections_active", "gauge", "Client connections open now, over all workers (at their last heartbeat).");
        Sample(sb, "prefork_connections_active", [], c.ActiveConnections);
        Family(sb, "prefork_connections_rejected_total", "counter", "Connections closed unserved: a failed TLS handshake, or a PROXY header refused (proxy_allow_ips) or malformed.");
        Sample(sb, "prefork_connections_rejected_total", [("reason", "tls_handshake")], c.RejectedTls);
        Sample(sb, "prefork_connections_rejected_total", [("reason", "proxy_protocol")], c.RejectedProxy);
        Family(sb, "prefork_response_body_bytes_total", "counter", "Response body bytes the workers wrote (heads and chunked framing not included).");
        Sample(sb, "prefork_response_body_bytes_total", [], c.BodyBytes);
    }

    private static (string, string)[] Labels(WorkerStatus w) =>
        [("index", w.Index.ToString(CultureInfo.InvariantCulture)), ("pid", w.Pid.ToString(CultureInfo.InvariantCulture)), ("state", w.State)];

    private static void Family(StringBuilder sb, string name, string type, string help) =>
        sb.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\").Replace("\n", "\\n")).Append('\n')
          .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder sb, string name, (string Name, string Value)[] labels, double value)
    {
        sb.Append(name);
        if (labels.Length > 0)
        {
            sb.Append('{');
            for (int i = 0; i < labels.Length; i++)
            {
                if (i > 0) sb.Append(',');
                sb.Append(labels[i].Name).Append("=\"")
                  .Append(labels[i].Value.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n")).Append('"');
            }
            sb.Append('}');
        }
        sb.Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
    }
}
