using System.Globalization;
using System.Text;
using Prefork.Control;

namespace Prefork.Metrics;

/// <summary>
/// The master's snapshot in Prometheus' text exposition format (version 0.0.4). Only what the
/// master knows for certain: counters from its own bookkeeping (they survive worker replacement),
/// per-worker RSS and CPU from /proc, listener queues from TCP_INFO. Per-request series (duration
/// histograms, status classes) need counts the workers do not send yet, so they are not invented here.
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
        foreach (var state in WorkerStates.All) Sample(sb, "prefork_workers", [("state", state)], s.Workers.Count(w => w.State == state));
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
