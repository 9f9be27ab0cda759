using System.Globalization;
using System.Net.Sockets;
using Prefork.Config;
using Prefork.Control;
using Prefork.Protocol;

namespace Prefork.Master;

/// <summary>
/// Keeps the master's counters and turns its state into the <see cref="StatusSnapshot"/> that the
/// control socket, the metrics and systemd read. Used by the loop thread only; what it publishes is
/// immutable and swapped in whole. Reading /proc for a worker's RSS and CPU happens at most once a
/// second per worker, however often the loop turns.
/// </summary>
internal sealed class StatusBoard(TimeProvider clock)
{
    private readonly DateTimeOffset _startedAt = StatusSnapshot.WallNow(); // for people: decisions use the monotonic clock
    private readonly long _startedMonotonic = clock.GetTimestamp();
    private readonly Dictionary<int, Sample> _samples = [];
    private readonly Dictionary<int, string> _causes = [];  // why the master ended a worker, when its state alone does not say
    private readonly Dictionary<string, long> _exits = [];
    private long _retiredRequests, _spawns, _reloads;
    private readonly RequestCounts _retiredCounts = new(); // what exited workers last reported: counters stay monotonic
    private GatewayConfig? _tomlOf;
    private string _toml = "";
    private StatusSnapshot? _current;

    /// <summary>The last snapshot published (null before the first turn).</summary>
    public StatusSnapshot? Current => Volatile.Read(ref _current);

    public void Spawned() => _spawns++;
    public void Reloaded() => _reloads++;
    /// <summary>Notes why the master is ending this worker, for its exit reason (e.g. "ctl").</summary>
    public void EndingBecause(WorkerHandle w, string reason) => _causes[w.Pid] = reason;

    /// <summary>
    /// The master retires this worker now: its exit will count as max_requests, memory, age or ctl (recycled),
    /// reload (an older generation) or scale (fewer workers wanted, WINCH). Decided now, not at its exit,
    /// which may come after the next reload.
    /// </summary>
    public void Retiring(WorkerHandle w, int generation)
    {
        if (!_causes.ContainsKey(w.Pid))
            _causes[w.Pid] = w.RecycleReason is { } why ? RecycleLabel(why) : w.Generation != generation ? "reload" : "scale";
    }

    /// <summary>A worker is gone: its requests join the total, its exit is counted under <paramref name="reason"/>.</summary>
    public void Exited(WorkerHandle w, string reason)
    {
        _retiredRequests += w.Requests;
        _retiredCounts.Add(w.Counts.CountersOnly());
        _exits[reason] = _exits.GetValueOrDefault(reason) + 1;
        _samples.Remove(w.Pid);
        _causes.Remove(w.Pid);
    }

    /// <summary>
    /// The label of a worker's exit in the counters: crash, timeout, boot_failure, max_requests, memory, age,
    /// reload, scale, ctl, signal (killed by someone else) or shutdown.
    /// </summary>
    public string ExitReason(WorkerHandle w, Ending ending, int generation, bool stopping)
    {
        if (_causes.TryGetValue(w.Pid, out var cause)) return cause;
        return ending switch
        {
            Ending.Retired when stopping => "shutdown",
            Ending.Retired when w.RecycleReason is { } why => RecycleLabel(why),
            Ending.Retired when w.Generation != generation => "reload",
            Ending.Retired => "scale",
            Ending.BootFailed => "boot_failure",
            Ending.KilledWhileBooting or Ending.KilledByOthers => "signal",
            _ when w.Condemned => "timeout",
            _ => "crash",
        };
    }

    /// <summary>The rule behind a recycling reason (see <see cref="Supervision.RecycleReason"/>).</summary>
    internal static string RecycleLabel(string reason) =>
        reason.Contains("max_requests") ? "max_requests" : reason.Contains("max_worker_memory") ? "memory"
        : reason.Contains("max_worker_age") ? "age" : "ctl";

    /// <summary>Builds and publishes the snapshot of this turn.</summary>
    public StatusSnapshot Publish(GatewayConfig config, int generation, string phase, bool winched, int target,
        IReadOnlyList<WorkerHandle> workers, IReadOnlyList<Listener> listeners, bool draining = false)
    {
        long now = clock.GetTimestamp();
        var wallNow = StatusSnapshot.WallNow();
        var list = new List<WorkerStatus>(workers.Count);
        long live = 0;
        var counts = new RequestCounts();
        counts.Add(_retiredCounts);
        foreach (var w in workers)
        {
            live += w.Requests;
            counts.Add(w.Counts);
            var sample = SampleOf(w.Pid, now);
            double age = clock.GetElapsedTime(w.SpawnedAt, now).TotalSeconds;
            double silent = clock.GetElapsedTime(w.LastHeard, now).TotalSeconds;
            list.Add(new WorkerStatus(w.Pid, w.Index, w.Generation, StateName(w.State), w.Command is not null,
                w.Requests, w.BusyRequest, w.BusyMs < 0 ? -1 : Math.Round(w.BusyMs / 1000.0 + silent, 3),
                sample.ResidentBytes, sample.CpuSeconds, Math.Round(sample.CpuPercent, 1),
                wallNow - TimeSpan.FromSeconds(age), Math.Round(age, 3), Math.Round(silent, 3), w.Status));
        }
        bool ready = phase != "stopping" && !winched && !draining && Enumerable.Range(0, target).All(index =>
            workers.Any(w => w.Index == index && w.Generation == generation && w.State is WorkerState.Serving or WorkerState.Recycling));
        if (!ReferenceEquals(_tomlOf, config)) (_tomlOf, _toml) = (config, config.ToToml());
        var snapshot = new StatusSnapshot(Environment.ProcessId, ServerInfo.Version, generation, _startedAt,
            Math.Round(clock.GetElapsedTime(_startedMonotonic, now).TotalSeconds, 3), phase, ready, winched, target,
            config.RunsCommand ? "command" : config.Get(Settings.WorkerClass),
            list, listeners.Select(l => DescribeListener(l, config.CertFile is not null)).ToList(),
            new MasterCounters(_retiredRequests + live, _spawns, new Dictionary<string, long>(_exits), _reloads),
            _toml, config.FilePath) { Requests = counts, Draining = draining };
        Volatile.Write(ref _current, snapshot);
        return snapshot;
    }

    internal static string StateName(WorkerState state) => state switch
    {
        WorkerState.Booting => WorkerStates.Booting,
        WorkerState.Serving => WorkerStates.Serving,
        WorkerState.Recycling => WorkerStates.Recycling,
        WorkerState.Retiring => WorkerStates.Retiring,
        _ => WorkerStates.Condemned,
    };

    // ---- /proc ---------------------------------------------------------------------------------

    private sealed record Sample(long Taken, long ResidentBytes, double CpuSeconds, double CpuPercent);

    /// <summary>A worker's RSS in MiB for max_worker_memory: the sample the status shows (read at most once a second).</summary>
    public long ResidentMiB(int pid) => SampleOf(pid, clock.GetTimestamp()).ResidentBytes / (1024 * 1024);

    private Sample SampleOf(int pid, long now)
    {
        if (_samples.TryGetValue(pid, out var last) && clock.GetElapsedTime(last.Taken, now).TotalSeconds < 1) return last;
        var (rss, cpu) = ReadProc(pid);
        double percent = last is null ? 0 : Math.Max(0, cpu - last.CpuSeconds) / clock.GetElapsedTime(last.Taken, now).TotalSeconds * 100;
        return _samples[pid] = new Sample(now, rss, cpu, percent);
    }

    /// <summary>Resident bytes (statm) and user+system CPU seconds (stat) of a process; zeros when it is gone.</summary>
    internal static (long ResidentBytes, double CpuSeconds) ReadProc(int pid)
    {
        try
        {
            var statm = File.ReadAllText($"/proc/{pid}/statm").Split(' ');
            long rss = long.Parse(statm[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // after "pid (comm) ": fields[0] is field 3, state
            // utime and stime (fields 14 and 15) count USER_HZ ticks, 100 a second on Linux whatever the kernel's HZ.
            double cpu = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
            return (rss, cpu);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return (0, 0);
        }
    }

    /// <summary>A TCP listener's accept queue: Linux's TCP_INFO on a listening socket gives its length (tcpi_unacked) and limit (tcpi_sacked).</summary>
    private static ListenerStatus DescribeListener(Listener l, bool tls)
    {
        int? length = null, max = null;
        string address = l.Address.Text;
        try
        {
            address = l.Describe(tls);
            if (l.Socket.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            {
                Span<byte> info = stackalloc byte[104];
                int n = l.Socket.GetRawSocketOption(6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, info);
                if (n >= 32)
                {
                    length = BitConverter.ToInt32(info[24..]);
                    max = BitConverter.ToInt32(info[28..]);
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        return new ListenerStatus(address, l.Fd, length, max);
    }
}
