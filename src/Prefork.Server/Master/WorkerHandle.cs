using System.Diagnostics;
using Mono.Unix.Native;
using Prefork.Interop;
using Prefork.Protocol;

namespace Prefork.Master;

/// <summary>Where a worker is in its life, as the master sees it.</summary>
public enum WorkerState
{
    /// <summary>Spawned, loading the app; worker_boot_timeout applies.</summary>
    Booting,
    /// <summary>Reported ready; `timeout` applies.</summary>
    Serving,
    /// <summary>Serving, but due for replacement (max_requests, age, memory, a new generation): retired once its replacement is ready.</summary>
    Recycling,
    /// <summary>Told to stop (TERM): it finishes what it has, and is killed if still alive after its grace.</summary>
    Retiring,
    /// <summary>Given up on (timeout, boot timeout): ABRT or KILL now, KILL after a short grace. Its exit is no surprise.</summary>
    Condemned,
}

/// <summary>What a command worker (any program, see `command`) was started with, beyond what every worker has.</summary>
/// <param name="StopSignal">What asks it to stop gracefully (`stop_signal`).</param>
/// <param name="ReadyDelaySeconds">`ready = "delay:N"`: it counts as ready N seconds after it started; 0: when it says READY=1.</param>
public sealed record CommandDetails(Signum StopSignal, int ReadyDelaySeconds);

/// <summary>
/// Everything the master knows about one worker, and the transitions of its life (Puma's
/// WorkerHandle). The handle decides which signal is due; the master sends it. A transition that
/// does not apply to the current state is refused (returns false) or ignored.
/// </summary>
public sealed class WorkerHandle
{
    /// <summary>The process we started; null for a worker adopted from the previous image across an in-place upgrade (USR2).</summary>
    public Process? Process { get; init; }
    public required int Pid { get; init; } // kept: Process.Id is gone once the Process is disposed
    public required int Index { get; init; }
    public required int Generation { get; init; }
    /// <summary>Read end of the worker's pipe: heartbeats and boot reports from a gateway worker, stdout and stderr of a command worker.</summary>
    public required int PipeFd { get; init; }
    /// <summary>Set for a command worker (any program); null for a gateway worker.</summary>
    public CommandDetails? Command { get; init; }
    /// <summary>A command worker's output, logged line by line; its last lines explain a failed boot.</summary>
    public WorkerOutput? Output => Command is null ? null : _output ??= new WorkerOutput(ToString());
    private WorkerOutput? _output;
    /// <summary>Monotonic timestamp (<see cref="Monotonic"/>) of the spawn; carried across an in-place upgrade.</summary>
    public required long SpawnedAt { get; init; }
    /// <summary>This worker's own max_requests (the setting plus its jitter); 0 for no limit.</summary>
    public long MaxRequests { get; init; }

    private bool _booted;
    private long _lastHeard;
    private long _requests;
    private long? _killAt;   // monotonic timestamp of the KILL that ends a retirement or a condemnation
    private bool _aborting;  // condemned for a timeout: ABRT until it dies or its KILL is due

    public WorkerState State { get; private set; } = WorkerState.Booting;

    /// <summary>It reported ready at some point (a retiring or condemned worker may have, or not). Set on adoption.</summary>
    public bool Booted
    {
        get => _booted;
        init { _booted = value; State = value ? WorkerState.Serving : WorkerState.Booting; }
    }
    /// <summary>Monotonic timestamp of the last message from it (any message is a heartbeat).</summary>
    public required long LastHeard { get => _lastHeard; init => _lastHeard = value; }
    public long Requests { get => _requests; init => _requests = value; }
    /// <summary>How long the worker's oldest in-flight request had run at the last heartbeat, -1 when idle.</summary>
    public long BusyMs { get; private set; } = -1;
    /// <summary>Its per-request counts as of its last heartbeat (zeros for workers that send none).</summary>
    public RequestCounts Counts { get; } = new();
    /// <summary>"METHOD PATH" of that request, "" when idle.</summary>
    public string BusyRequest { get; private set; } = "";
    /// <summary>Why it did not boot: its own report, or the master's boot timeout.</summary>
    public string? BootFailure { get; private set; }
    /// <summary>Why it is recycled (or was, before retiring).</summary>
    public string? RecycleReason { get; private set; }

    /// <summary>A command worker sent WATCHDOG=1 at least once: from then on, silence for `timeout` condemns it.</summary>
    public bool Watchdog { get => _watchdog; init => _watchdog = value; }
    private bool _watchdog;
    /// <summary>A command worker's last STATUS= line ("" when none).</summary>
    public string Status { get; private set; } = "";
    /// <summary>A command worker said STOPPING=1.</summary>
    public bool SaidStopping { get; private set; }

    /// <summary>The signal that asks it to stop gracefully.</summary>
    public Signum StopSignal => Command?.StopSignal ?? Signum.SIGTERM;
    /// <summary>The signal that asks it to stop now (INT or QUIT to the master): QUIT for gateway workers; a program gets TERM (QUIT would dump core).</summary>
    public Signum FastStopSignal => Command is null ? Signum.SIGQUIT : Signum.SIGTERM;

    public bool Retiring => State == WorkerState.Retiring;
    public bool Condemned => State == WorkerState.Condemned;

    /// <summary>Unparsed bytes from the pipe (a line may arrive in pieces).</summary>
    public string Partial { get; set; } = "";

    // ---- what it says ------------------------------------------------------------------------

    /// <summary>Any line from it, understood or not: it lives.</summary>
    public void Heard(long now) => _lastHeard = now;

    /// <summary>It reported ready. False when it already had (nothing to announce again).</summary>
    public bool OnReady(long now)
    {
        Heard(now);
        if (_booted) return false;
        _booted = true;
        if (State == WorkerState.Booting) State = WorkerState.Serving; // a retiring or condemned one stays so
        return true;
    }

    public void OnHeartbeat(WorkerMessage.Heartbeat beat, long now)
    {
        Heard(now);
        _requests = beat.Requests;
        BusyMs = beat.BusyMs;
        BusyRequest = beat.BusyMs < 0 ? "" : $"{beat.Method} {beat.Path}";
        if (beat.Counts is { } counts) Counts.Update(counts);
    }

    /// <summary>A command worker's sd_notify datagram (see <see cref="NotifyMessage"/>); true when it just became ready.</summary>
    public bool OnNotify(NotifyMessage message, long now)
    {
        Heard(now);
        if (message.Watchdog) _watchdog = true;
        if (message.Status is { } status) Status = status;
        if (message.Stopping) SaidStopping = true;
        if (message.Heartbeat is { } beat) OnHeartbeat(beat, now);
        return message.Ready && OnReady(now);
    }

    /// <summary>Why it cannot boot (its report, or the master's boot timeout); ignored once it booted, and the first reason stands.</summary>
    public void BootFailed(string reason)
    {
        if (!_booted) BootFailure ??= reason;
    }

    // ---- what the master decides ---------------------------------------------------------------

    /// <summary>Marks a serving worker for replacement; it serves until then. False in any other state.</summary>
    public bool Recycle(string reason)
    {
        if (State != WorkerState.Serving) return false;
        State = WorkerState.Recycling;
        RecycleReason = reason;
        return true;
    }

    /// <summary>
    /// Tells it to stop: the caller sends TERM now, and <see cref="SignalDue"/> says KILL at
    /// <paramref name="killAt"/> (a monotonic timestamp). False (nothing to send) when it is already retiring or condemned.
    /// </summary>
    public bool Retire(long killAt)
    {
        if (State is WorkerState.Retiring or WorkerState.Condemned) return false;
        State = WorkerState.Retiring;
        _killAt = killAt;
        return true;
    }

    /// <summary>
    /// Gives up on it: the caller sends ABRT (<paramref name="abort"/>, for a core and a stack) or KILL
    /// now; <see cref="SignalDue"/> repeats ABRT and says KILL at <paramref name="killAt"/>. False when
    /// it is already condemned or retiring (a retiring worker has its own KILL due).
    /// </summary>
    public bool Condemn(long killAt, bool abort)
    {
        if (State is WorkerState.Retiring or WorkerState.Condemned) return false;
        State = WorkerState.Condemned;
        _killAt = killAt;
        _aborting = abort;
        return true;
    }

    /// <summary>
    /// The signal to send it this pass, if any: KILL once its grace is over (once), else ABRT again
    /// while an abort is pending (repeats of one signal merge while it is not scheduled, and the CLR
    /// swallows the first).
    /// </summary>
    public Signum? SignalDue(long now)
    {
        if (_killAt is { } killAt && now >= killAt)
        {
            _killAt = null;
            _aborting = false;
            return Signum.SIGKILL;
        }
        return _aborting ? Signum.SIGABRT : null;
    }

    /// <summary>Checks without blocking whether it has exited; code, or signal (0 when it exited normally).</summary>
    public bool HasExited(out int code, out int signal)
    {
        code = signal = 0;
        if (Process is null) return Libc.TryReap(Pid, out code, out signal);
        if (!Process.HasExited) return false;
        code = Process.ExitCode;
        if (code > 128) (signal, code) = (code - 128, 0); // .NET reports death by signal N as 128 + N
        return true;
    }

    public override string ToString() => $"worker {Index} (pid {Pid})";
}
