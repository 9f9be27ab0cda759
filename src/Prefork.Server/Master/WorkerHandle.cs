using System.Diagnostics;
using Prefork.Interop;

namespace Prefork.Master;

/// <summary>Everything the master knows about one worker, in one place (Puma's WorkerHandle).</summary>
public sealed class WorkerHandle
{
    /// <summary>The process we started; null for a worker adopted from the previous image across an in-place upgrade (USR2).</summary>
    public Process? Process { get; init; }
    public required int Pid { get; init; } // kept: Process.Id is gone once the Process is disposed
    public required int Index { get; init; }
    public required int Generation { get; init; }
    /// <summary>Read end of the worker's pipe (heartbeats and boot reports).</summary>
    public required int PipeFd { get; init; }
    /// <summary>Monotonic timestamp (<see cref="Monotonic"/>) of the spawn; carried across an in-place upgrade.</summary>
    public required long SpawnedAt { get; init; }
    /// <summary>This worker's own max_requests (the setting plus its jitter); 0 for no limit.</summary>
    public long MaxRequests { get; init; }

    public bool Booted { get; set; }
    /// <summary>Monotonic timestamp of the last message from it (any message is a heartbeat).</summary>
    public required long LastHeard { get; set; }
    public long Requests { get; set; }
    /// <summary>How long the worker's oldest in-flight request had run at the last ping, -1 when idle.</summary>
    public long BusyMs { get; set; } = -1;
    public string BusyRequest { get; set; } = "";
    public string? BootFailure { get; set; }

    /// <summary>Why it should be replaced (max_requests, memory, age), or null. It serves until its replacement is ready.</summary>
    public string? RecycleReason { get; set; }
    /// <summary>When the master told it to stop (TERM); it is killed at <see cref="KillAt"/> if still alive. Monotonic timestamps.</summary>
    public long? RetiringSince { get; set; }
    public long? KillAt { get; set; }
    public bool Retiring => RetiringSince is not null;
    /// <summary>Set once the master gave up on it (timeout, boot timeout, graceful timeout): its exit is not a surprise.</summary>
    public bool Condemned { get; set; }
    /// <summary>Condemned for a timeout: sent ABRT (for a core and a stack) until it dies or its KILL is due.</summary>
    public bool Aborting { get; set; }

    /// <summary>Unparsed bytes from the pipe (a line may arrive in pieces).</summary>
    public string Partial { get; set; } = "";

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
