using System.Collections;
using System.Globalization;

namespace Prefork.AspNetCore;

/// <summary>
/// What the Prefork master tells a command worker through its environment: the listening sockets
/// (systemd's LISTEN_FDS protocol), where to send sd_notify datagrams, the watchdog interval, and
/// Prefork's own PREFORK_* values. <see cref="Read()"/> returns null outside Prefork.
/// </summary>
public sealed class PreforkEnvironment
{
    public const int FirstListenFd = 3; // SD_LISTEN_FDS_START

    /// <summary>The inherited listening sockets, fd 3, 4, … in the master's `bind` order, with their LISTEN_FDNAMES name.</summary>
    public required IReadOnlyList<(int Fd, string Name)> Listeners { get; init; }

    /// <summary>NOTIFY_SOCKET as given ('@' = the abstract namespace), or null when the master listens for nothing.</summary>
    public string? NotifySocket { get; init; }

    /// <summary>WATCHDOG_USEC, when the master set it for this process (WATCHDOG_PID is ours); null when it has no watchdog.</summary>
    public TimeSpan? Watchdog { get; init; }

    public required int MasterPid { get; init; }
    public int WorkerIndex { get; init; }
    public int Generation { get; init; }

    /// <summary>The listen backlog the master used; Kestrel must listen() with the same (it calls listen() again on the shared socket).</summary>
    public required int Backlog { get; init; }

    /// <summary>How long the master waits for in-flight requests after its stop signal before it kills the worker.</summary>
    public TimeSpan? GracefulTimeout { get; init; }

    /// <summary>
    /// The values of this process's environment, or null when it was not started by a Prefork master
    /// (no PREFORK_MASTER_PID, or LISTEN_PID is not this process: the sockets were meant for another).
    /// </summary>
    public static PreforkEnvironment? Read() => Read(Environment.GetEnvironmentVariables(), Environment.ProcessId);

    /// <summary>
    /// <see cref="Read()"/> over <paramref name="variables"/> for process <paramref name="pid"/>.
    /// Throws <see cref="InvalidOperationException"/>, naming the variable, when Prefork's values are malformed.
    /// </summary>
    public static PreforkEnvironment? Read(IDictionary variables, int pid)
    {
        string? Get(string name) => variables[name] as string;
        string self = pid.ToString(CultureInfo.InvariantCulture);
        if (Get("PREFORK_MASTER_PID") is null || Get("LISTEN_PID") != self) return null;

        int count = Number("LISTEN_FDS", Get("LISTEN_FDS"), min: 1);
        var names = (Get("LISTEN_FDNAMES") ?? "").Split(':');
        var listeners = Enumerable.Range(0, count)
            .Select(i => (FirstListenFd + i, i < names.Length && names[i].Length > 0 ? names[i] : "unknown"))
            .ToList();
        TimeSpan? watchdog = null;
        if (Get("WATCHDOG_USEC") is { } usec && (Get("WATCHDOG_PID") is null || Get("WATCHDOG_PID") == self))
        {
            long micro = long.TryParse(usec, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0
                ? v : throw Malformed("WATCHDOG_USEC", usec, "a positive number of microseconds");
            watchdog = TimeSpan.FromMicroseconds(micro);
        }
        return new PreforkEnvironment
        {
            Listeners = listeners,
            NotifySocket = string.IsNullOrEmpty(Get("NOTIFY_SOCKET")) ? null : Get("NOTIFY_SOCKET"),
            Watchdog = watchdog,
            MasterPid = Number("PREFORK_MASTER_PID", Get("PREFORK_MASTER_PID"), min: 1),
            WorkerIndex = Get("PREFORK_WORKER_INDEX") is { } index ? Number("PREFORK_WORKER_INDEX", index, min: 0) : 0,
            Generation = Get("PREFORK_GENERATION") is { } generation ? Number("PREFORK_GENERATION", generation, min: 0) : 0,
            // When the master does not say: Prefork's own `backlog` default.
            Backlog = Get("PREFORK_BACKLOG") is { } backlog ? Number("PREFORK_BACKLOG", backlog, min: 1) : 2048,
            GracefulTimeout = Get("PREFORK_GRACEFUL_TIMEOUT") is { } seconds
                ? TimeSpan.FromSeconds(Number("PREFORK_GRACEFUL_TIMEOUT", seconds, min: 0)) : null,
        };
    }

    private static int Number(string name, string? value, int min) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= min
            ? n : throw Malformed(name, value, min == 0 ? "a whole number" : $"a whole number of at least {min}");

    private static InvalidOperationException Malformed(string name, string? value, string expected) =>
        new($"Prefork.AspNetCore: {name}={(value is null ? "(unset)" : $"'{value}'")} is not {expected}; it is set by the Prefork master, which started this process");

    public override string ToString() =>
        $"worker {WorkerIndex} of master {MasterPid} (generation {Generation}): " +
        string.Join(", ", Listeners.Select(l => $"fd {l.Fd} '{l.Name}'")) + $", backlog {Backlog}";
}
