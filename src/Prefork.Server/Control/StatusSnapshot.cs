using System.Text.Json.Serialization;
using Prefork.Protocol;

namespace Prefork.Control;

/// <summary>
/// What the master looks like after one turn of its loop: published whole by the loop thread and
/// never changed after, so the control socket, the metrics listener and systemd's STATUS= read it
/// from any thread without a lock. Times are seconds; counters only grow over the master's life.
/// </summary>
/// <param name="Phase">starting, serving, reloading or stopping.</param>
/// <param name="Ready">The current generation serves at full strength (every index has a booted worker of it), and the master is not draining.</param>
/// <param name="Winched">WINCH: no workers until HUP.</param>
public sealed record StatusSnapshot(
    int MasterPid,
    string Version,
    int Generation,
    DateTimeOffset StartedAt,
    double UptimeSeconds,
    string Phase,
    bool Ready,
    bool Winched,
    int TargetWorkers,
    string WorkerKind,
    IReadOnlyList<WorkerStatus> Workers,
    IReadOnlyList<ListenerStatus> Listeners,
    MasterCounters Counters,
    [property: JsonIgnore] string ConfigToml,
    string? ConfigPath)
{
    /// <summary>The wall-clock time, for the start times people and Prometheus read; the master decides nothing by it.</summary>
    public static DateTimeOffset WallNow() => DateTimeOffset.UtcNow;

    /// <summary>`prefork ctl drain`: not ready, so load balancers stop sending, while the workers go on serving.</summary>
    public bool Draining { get; init; }

    /// <summary>When it was published (Environment.TickCount64, monotonic ms): /live checks the loop still turns.</summary>
    [JsonIgnore] public long PublishedMs { get; } = Environment.TickCount64;

    /// <summary>Per-request counts of all workers, those that exited included (their counters; gauges are the live workers').</summary>
    [JsonIgnore] public RequestCounts Requests { get; init; } = new();

    /// <summary>How many workers are in each state (every state of <see cref="WorkerStates.All"/>, 0 included), for metrics and statsd.</summary>
    [JsonIgnore] public IReadOnlyDictionary<string, int> WorkersByState { get; } =
        WorkerStates.All.ToDictionary(state => state, state => Workers.Count(w => w.State == state));

    /// <summary>Workers of the current generation that serve (booted, not on their way out).</summary>
    public int ServingCurrent => Workers.Count(w => w.Generation == Generation && w.State is WorkerStates.Serving or WorkerStates.Recycling);
}

/// <summary>One worker as the master last saw it.</summary>
/// <param name="State">booting, serving, recycling, retiring or condemned (see <see cref="WorkerStates"/>).</param>
/// <param name="Requests">Requests it served (its last heartbeat).</param>
/// <param name="BusyRequest">"METHOD PATH" of its oldest request in flight, "" when idle.</param>
/// <param name="BusySeconds">How long that request has run (at the last heartbeat plus the silence since), -1 when idle.</param>
/// <param name="ResidentBytes">RSS, from /proc (sampled at most once a second); 0 when unknown.</param>
/// <param name="CpuSeconds">User plus system CPU time it used.</param>
/// <param name="CpuPercent">CPU use over the last sample (100 = one core).</param>
/// <param name="AgeSeconds">Since it was spawned.</param>
/// <param name="LastHeardSeconds">Since its last message (heartbeat).</param>
/// <param name="Status">A command worker's last STATUS= line.</param>
public sealed record WorkerStatus(
    int Pid, int Index, int Generation, string State, bool Command,
    long Requests, string BusyRequest, double BusySeconds,
    long ResidentBytes, double CpuSeconds, double CpuPercent,
    DateTimeOffset StartedAt, double AgeSeconds, double LastHeardSeconds, string Status);

/// <summary>The names of worker states as the control socket and the metrics spell them.</summary>
public static class WorkerStates
{
    public const string Booting = "booting", Serving = "serving", Recycling = "recycling", Retiring = "retiring", Condemned = "condemned";
    public static readonly IReadOnlyList<string> All = [Booting, Serving, Recycling, Retiring, Condemned];
}

/// <summary>A listening socket of the master's; for TCP, the accept queue from TCP_INFO (null for Unix sockets).</summary>
public sealed record ListenerStatus(string Address, int Fd, int? QueueLength, int? QueueMax);

/// <summary>
/// Counters over the master's life. Requests add what retired workers last reported to what live
/// ones report, so the total never goes back when a worker is replaced.
/// </summary>
/// <param name="ExitsByReason">crash, timeout, boot_failure, max_requests, memory, age, reload, scale, ctl, signal, shutdown.</param>
public sealed record MasterCounters(long Requests, long WorkerSpawns, IReadOnlyDictionary<string, long> ExitsByReason, long Reloads);
