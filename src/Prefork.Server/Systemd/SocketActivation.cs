using System.Globalization;
using Mono.Unix.Native;
using Prefork.Config;
using Serilog;

namespace Prefork.Systemd;

/// <summary>
/// sd_listen_fds(3) without libsystemd. systemd (or systemd-socket-activate) opens the sockets,
/// passes them as fds 3..3+LISTEN_FDS-1 and sets LISTEN_PID to the pid it started, so the master
/// never binds and the sockets outlive restarts: connections queue in the kernel meanwhile.
/// </summary>
public static class SocketActivation
{
    public const string EnvListenFds = "LISTEN_FDS", EnvListenPid = "LISTEN_PID", EnvListenFdNames = "LISTEN_FDNAMES";
    public const int FirstFd = 3; // SD_LISTEN_FDS_START

    /// <summary>The fds passed to this process, with their names (LISTEN_FDNAMES, "unknown" when unnamed).</summary>
    public static IReadOnlyList<(int Fd, string Name)> PassedSockets()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(EnvListenFds), NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count <= 0)
            return [];
        // LISTEN_PID guards against fds meant for a parent that leaked its environment to us.
        if (Environment.GetEnvironmentVariable(EnvListenPid) != Environment.ProcessId.ToString(CultureInfo.InvariantCulture))
        {
            Log.Warning("{Fds}={Count} is set but {PidVariable}={ListenPid} is not this process ({Self}); ignoring the passed sockets",
                EnvListenFds, count, EnvListenPid, Environment.GetEnvironmentVariable(EnvListenPid), Environment.ProcessId);
            return [];
        }
        var names = (Environment.GetEnvironmentVariable(EnvListenFdNames) ?? "").Split(':');
        return Enumerable.Range(0, count)
            .Select(i => (FirstFd + i, i < names.Length && names[i].Length > 0 ? names[i] : "unknown"))
            .ToList();
    }

    /// <summary>
    /// What the master listens on. Sockets from systemd replace `bind`, unless `bind` names some
    /// of them as fd://N, in which case `bind` is taken as written.
    /// </summary>
    public static IReadOnlyList<ListenAddress> Addresses(IReadOnlyList<string> bind)
    {
        var configured = bind.Select(ListenAddress.Parse).ToList();
        var passed = PassedSockets();
        if (passed.Count == 0) return configured;
        if (configured.Any(a => a.InheritedFd is not null))
        {
            foreach (var (fd, name) in passed.Where(p => !configured.Any(a => a.InheritedFd == p.Fd)))
            {
                Log.Warning("Socket fd {Fd} ({Name}) passed by systemd is not named in bind; not listening on it", fd, name);
                Syscall.fcntl(fd, FcntlCommand.F_SETFD, 1); // FD_CLOEXEC: not leaked into workers
            }
            return configured;
        }
        Log.Information("Using {Count} socket(s) passed by systemd ({Names}); bind = [{Bind}] is not used",
            passed.Count, string.Join(", ", passed.Select(p => $"fd {p.Fd} '{p.Name}'")), string.Join(", ", bind));
        return passed.Select(p => ListenAddress.Parse($"fd://{p.Fd}")).ToList();
    }

    /// <summary>
    /// What a worker must not inherit: the LISTEN_* variables (workers get their fds through
    /// PREFORK_LISTEN_FDS, and LISTEN_PID would name the wrong process) and the notify/watchdog
    /// ones (only the master speaks to systemd).
    /// </summary>
    public static void RemoveFromWorkerEnvironment<TValue>(IDictionary<string, TValue> environment)
    {
        foreach (var name in new[] { EnvListenFds, EnvListenPid, EnvListenFdNames,
                     SystemdNotifier.EnvNotifySocket, SystemdNotifier.EnvWatchdogUsec, SystemdNotifier.EnvWatchdogPid })
            environment.Remove(name);
    }
}
