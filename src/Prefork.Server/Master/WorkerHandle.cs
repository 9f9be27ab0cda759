using System.Diagnostics;

namespace Prefork.Master;

/// <summary>Everything the master knows about one worker, in one place (Puma's WorkerHandle).</summary>
public sealed class WorkerHandle
{
    public required Process Process { get; init; }
    public required int Pid { get; init; } // kept: Process.Id is gone once the Process is disposed
    public required int Index { get; init; }
    public required int Generation { get; init; }
    /// <summary>Read end of the worker's pipe (heartbeats and boot reports).</summary>
    public required int PipeFd { get; init; }
    public DateTime SpawnedAt { get; } = DateTime.UtcNow;

    public bool Booted { get; set; }
    public DateTime LastHeard { get; set; } = DateTime.UtcNow;
    public long Requests { get; set; }
    /// <summary>How long the worker's oldest in-flight request had run at the last ping, -1 when idle.</summary>
    public long BusyMs { get; set; } = -1;
    public string BusyRequest { get; set; } = "";
    public string? BootFailure { get; set; }

    /// <summary>When the master told it to stop (TERM); it is killed at <see cref="KillAt"/> if still alive.</summary>
    public DateTime? RetiringSince { get; set; }
    public DateTime? KillAt { get; set; }
    public bool Retiring => RetiringSince is not null;
    public bool TimedOut { get; set; }

    /// <summary>Unparsed bytes from the pipe (a line may arrive in pieces).</summary>
    public string Partial { get; set; } = "";

    public override string ToString() => $"worker {Index} (pid {Pid})";
}
