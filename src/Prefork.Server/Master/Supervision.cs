using Prefork.Config;

namespace Prefork.Master;

/// <summary>What the master should do about one worker this pass (see <see cref="Supervision.Judge"/>).</summary>
internal enum Verdict
{
    Spare,
    /// <summary>Not ready within worker_boot_timeout.</summary>
    BootTimedOut,
    /// <summary>Stuck on one request longer than timeout.</summary>
    RequestTimedOut,
    /// <summary>No heartbeat for longer than timeout.</summary>
    SilentTimedOut,
}

/// <summary>A verdict, with the seconds that earned it (busy or silent) for the log.</summary>
internal readonly record struct Judgement(Verdict Verdict, double Seconds = 0);

/// <summary>How a worker's exit reads (see <see cref="Supervision.Ending"/>).</summary>
internal enum Ending
{
    /// <summary>The master told it to stop (retired, or the master is stopping).</summary>
    Retired,
    /// <summary>It could not boot: backs off (see <see cref="SpawnBackoff.CountsAsBootFailure"/>).</summary>
    BootFailed,
    /// <summary>Killed from outside while booting: replaced at once.</summary>
    KilledWhileBooting,
    /// <summary>A serving worker KILLed by someone else than the master: the OOM killer, probably.</summary>
    KilledByOthers,
    /// <summary>A serving worker died (crashed, exited, or condemned by the master).</summary>
    Died,
}

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
    /// Decides whether a worker overran: it did not boot within worker_boot_timeout, or it exceeded
    /// `timeout` (silent for too long, or stuck on one request). A retiring or condemned worker is
    /// past judging: its handle says when its KILL is due (<see cref="WorkerHandle.SignalDue"/>).
    /// </summary>
    public Judgement Judge(WorkerHandle w, GatewayConfig config)
    {
        long now = clock.GetTimestamp();
        if (w.State is WorkerState.Retiring or WorkerState.Condemned) return new(Verdict.Spare);
        if (w.State == WorkerState.Booting)
            return clock.GetElapsedTime(w.SpawnedAt, now).TotalSeconds > config.WorkerBootTimeout ? new(Verdict.BootTimedOut) : new(Verdict.Spare);
        if (config.Timeout == 0) return new(Verdict.Spare);
        double silent = clock.GetElapsedTime(w.LastHeard, now).TotalSeconds;
        double busy = w.BusyMs < 0 ? -1 : w.BusyMs / 1000.0 + silent;
        if (busy > config.Timeout) return new(Verdict.RequestTimedOut, busy);
        // A command worker is judged by its silence only once it has sent a WATCHDOG=1: a program
        // that never heard of the watchdog is not killed for not using it.
        if (silent > config.Timeout && (w.Command is null || w.Watchdog)) return new(Verdict.SilentTimedOut, silent);
        return new(Verdict.Spare);
    }

    /// <summary>`ready = "delay:N"`: a booting command worker that has run N seconds counts as ready.</summary>
    public bool ReadyByDelay(WorkerHandle w) =>
        w.State == WorkerState.Booting && w.Command is { ReadyDelaySeconds: > 0 } command &&
        clock.GetElapsedTime(w.SpawnedAt).TotalSeconds >= command.ReadyDelaySeconds;

    /// <summary>
    /// Why a booted worker should be replaced (max_requests, max_worker_age, max_worker_memory), or
    /// null. <paramref name="residentMiB"/> is asked only when the cheaper rules did not decide.
    /// </summary>
    public string? RecycleReason(WorkerHandle w, GatewayConfig config, Func<int, long> residentMiB)
    {
        if (w.State != WorkerState.Serving) return null;
        if (w.MaxRequests > 0 && w.Requests >= w.MaxRequests)
            return $"served {w.Requests} requests (max_requests {w.MaxRequests})";
        if (config.MaxWorkerAge > 0 && clock.GetElapsedTime(w.SpawnedAt).TotalSeconds > config.MaxWorkerAge)
            return $"older than max_worker_age ({config.MaxWorkerAge} s)";
        if (config.MaxWorkerMemoryMiB > 0 && residentMiB(w.Pid) is var rss && rss > config.MaxWorkerMemoryMiB)
            return $"resident memory {rss} MiB over max_worker_memory ({config.MaxWorkerMemoryMiB} MiB)";
        return null;
    }

    /// <summary>How the exit of <paramref name="w"/> (exit <paramref name="code"/>, or killed by <paramref name="signal"/>) reads.</summary>
    public static Ending Ending(WorkerHandle w, int code, int signal, bool stopping)
    {
        if (stopping || w.State == WorkerState.Retiring) return Master.Ending.Retired;
        if (!w.Booted) return SpawnBackoff.CountsAsBootFailure(w.BootFailure, signal) ? Master.Ending.BootFailed : Master.Ending.KilledWhileBooting;
        if (signal == SigKill && w.State != WorkerState.Condemned) return Master.Ending.KilledByOthers;
        return Master.Ending.Died;
    }

    internal const int SigKill = 9, SigTerm = 15, SigInt = 2;

    /// <summary>
    /// For every index 0..N-1 one booted, current worker (of the current generation, not marked for
    /// recycling): indexes without one get a worker; a worker it replaces is retired only once the
    /// replacement reports ready, so capacity never dips. Workers past the target are retired.
    /// </summary>
    public static Plan PlanWorkers(IEnumerable<WorkerHandle> workers, int targetWorkers, bool winched, int generation)
    {
        int target = winched ? 0 : targetWorkers;
        var active = workers.Where(w => w.State is not (WorkerState.Retiring or WorkerState.Condemned)).ToList(); // the others are on their way out
        var retire = active.Where(w => w.Index >= target).Select(w => (w, winched ? "WINCH" : "fewer workers wanted")).ToList();
        var spawn = new List<int>();
        bool allReady = true;
        for (int index = 0; index < target; index++)
        {
            var holders = active.Where(w => w.Index == index).ToList();
            var current = holders.FirstOrDefault(w => w.Generation == generation && w.State != WorkerState.Recycling);
            if (current is null) { allReady = false; spawn.Add(index); continue; }
            if (current.State == WorkerState.Booting) { allReady = false; continue; }
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

    /// <summary>
    /// Whether a worker that died before booting counts against the app. It does if it said why it
    /// cannot boot (exit 4 and a reason, or the master's worker_boot_timeout), or if it exited or
    /// crashed on its own (SEGV, ABRT, any exit code). Killed from outside by KILL, TERM or INT (an
    /// operator, a fault bench killing a worker a second, a deploy script) it says nothing about the
    /// app: counting it would starve capacity behind a 1, 2, 4 … s wait for no fault of the app.
    /// Gunicorn's arbiter likewise halts only on its own WORKER_BOOT_ERROR exit code. (The OOM
    /// killer during boot is one such KILL: the app is then respawned at its own boot's pace.)
    /// </summary>
    public static bool CountsAsBootFailure(string? reported, int signal) =>
        reported is not null || signal is not (Supervision.SigKill or Supervision.SigTerm or Supervision.SigInt);

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
