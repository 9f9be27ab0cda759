using Prefork.Config;

namespace Prefork.Master;

/// <summary>What the master should do about one worker this pass (see <see cref="Supervision.Judge"/>).</summary>
internal enum Verdict
{
    Spare,
    /// <summary>Its grace after TERM or ABRT is over: KILL.</summary>
    KillDue,
    /// <summary>Condemned for a timeout and still alive: ABRT again (repeats merge, and the CLR swallows the first).</summary>
    AbortAgain,
    /// <summary>Not ready within worker_boot_timeout.</summary>
    BootTimedOut,
    /// <summary>Stuck on one request longer than timeout.</summary>
    RequestTimedOut,
    /// <summary>No heartbeat for longer than timeout.</summary>
    SilentTimedOut,
}

/// <summary>A verdict, with the seconds that earned it (busy or silent) for the log.</summary>
internal readonly record struct Judgement(Verdict Verdict, double Seconds = 0);

/// <summary>What it takes to bring the workers to the target: who to retire (and why), which indexes need a worker.</summary>
internal sealed record Plan(int Target, List<(WorkerHandle Worker, string Why)> Retire, List<int> Spawn, bool AllReady);

/// <summary>
/// The master's decisions about its workers, apart from carrying them out (as Gunicorn tests its
/// arbiter): who hung, whose KILL is due, who is recycled, which indexes need a worker. Time is
/// read only as monotonic timestamps of the injected <see cref="TimeProvider"/> (see <see cref="Monotonic"/>),
/// so a step of the wall clock can neither condemn every worker nor disable timeouts.
/// </summary>
internal sealed class Supervision(TimeProvider clock)
{
    /// <summary>How long a worker condemned with ABRT (or KILL) has before the KILL that follows.</summary>
    public static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Decides whether a worker overran: its KILL is due (after a retirement's graceful_timeout or a
    /// condemnation's grace), it did not boot within worker_boot_timeout, or it exceeded `timeout`
    /// (silent for too long, or stuck on one request).
    /// </summary>
    public Judgement Judge(WorkerHandle w, GatewayConfig config)
    {
        long now = clock.GetTimestamp();
        if (w.KillAt is { } killAt && now >= killAt) return new(Verdict.KillDue);
        if (w.Condemned) return new(w.Aborting ? Verdict.AbortAgain : Verdict.Spare);
        if (!w.Booted)
            return clock.GetElapsedTime(w.SpawnedAt, now).TotalSeconds > config.WorkerBootTimeout ? new(Verdict.BootTimedOut) : new(Verdict.Spare);
        if (config.Timeout == 0 || w.Retiring) return new(Verdict.Spare);
        double silent = clock.GetElapsedTime(w.LastHeard, now).TotalSeconds;
        double busy = w.BusyMs < 0 ? -1 : w.BusyMs / 1000.0 + silent;
        if (busy > config.Timeout) return new(Verdict.RequestTimedOut, busy);
        if (silent > config.Timeout) return new(Verdict.SilentTimedOut, silent);
        return new(Verdict.Spare);
    }

    /// <summary>
    /// Why a booted worker should be replaced (max_requests, max_worker_age, max_worker_memory), or
    /// null. <paramref name="residentMiB"/> is asked only when the cheaper rules did not decide.
    /// </summary>
    public string? RecycleReason(WorkerHandle w, GatewayConfig config, Func<int, long> residentMiB)
    {
        if (w.Retiring || w.RecycleReason is not null || !w.Booted) return null;
        if (w.MaxRequests > 0 && w.Requests >= w.MaxRequests)
            return $"served {w.Requests} requests (max_requests {w.MaxRequests})";
        if (config.MaxWorkerAge > 0 && clock.GetElapsedTime(w.SpawnedAt).TotalSeconds > config.MaxWorkerAge)
            return $"older than max_worker_age ({config.MaxWorkerAge} s)";
        if (config.MaxWorkerMemoryMiB > 0 && residentMiB(w.Pid) is var rss && rss > config.MaxWorkerMemoryMiB)
            return $"resident memory {rss} MiB over max_worker_memory ({config.MaxWorkerMemoryMiB} MiB)";
        return null;
    }

    /// <summary>
    /// For every index 0..N-1 one booted, current worker (of the current generation, not marked for
    /// recycling): indexes without one get a worker; a worker it replaces is retired only once the
    /// replacement reports ready, so capacity never dips. Workers past the target are retired.
    /// </summary>
    public static Plan PlanWorkers(IEnumerable<WorkerHandle> workers, int targetWorkers, bool winched, int generation)
    {
        int target = winched ? 0 : targetWorkers;
        var active = workers.Where(w => !w.Retiring).ToList();
        var retire = active.Where(w => w.Index >= target).Select(w => (w, winched ? "WINCH" : "fewer workers wanted")).ToList();
        var spawn = new List<int>();
        bool allReady = true;
        for (int index = 0; index < target; index++)
        {
            var holders = active.Where(w => w.Index == index && !w.Condemned).ToList();
            var current = holders.FirstOrDefault(w => w.Generation == generation && w.RecycleReason is null);
            if (current is null) { allReady = false; spawn.Add(index); continue; }
            if (!current.Booted) { allReady = false; continue; }
            retire.AddRange(holders.Where(w => w != current).Select(old => (old, old.RecycleReason ?? $"replaced by generation {generation}")));
        }
        return new Plan(target, retire, spawn, allReady);
    }
}

/// <summary>
/// When the next worker may be spawned: after the n-th worker in a row that died before booting,
/// 1, 2, 4 … 30 s later (so a broken app does not spin the machine); after a failed start, 1 s.
/// </summary>
internal sealed class SpawnBackoff(TimeProvider clock)
{
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(30);
    private long _notBefore = long.MinValue;

    /// <summary>Consecutive workers that died before booting.</summary>
    public int BootFailures { get; private set; }

    public bool MaySpawn => clock.GetTimestamp() >= _notBefore;

    /// <summary>A worker died before booting: returns how long the next spawn waits.</summary>
    public TimeSpan BootFailed()
    {
        BootFailures++;
        var delay = TimeSpan.FromSeconds(Math.Min(MaxDelay.TotalSeconds, Math.Pow(2, BootFailures - 1)));
        Wait(delay);
        return delay;
    }

    /// <summary>A worker booted: the next failure starts the sequence again (a pending wait stands).</summary>
    public void Booted() => BootFailures = 0;

    /// <summary>The process could not even be started.</summary>
    public void SpawnFailed() => Wait(TimeSpan.FromSeconds(1));

    /// <summary>HUP: a new config deserves an immediate try.</summary>
    public void Reset()
    {
        BootFailures = 0;
        _notBefore = long.MinValue;
    }

    private void Wait(TimeSpan delay) => _notBefore = clock.After(delay);
}
