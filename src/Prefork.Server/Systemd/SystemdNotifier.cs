using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Prefork.Control;
using Serilog;

namespace Prefork.Systemd;

/// <summary>
/// sd_notify(3) without libsystemd: one datagram of NAME=VALUE lines to the Unix socket named by
/// $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@'). Without
/// $NOTIFY_SOCKET every method does nothing, so the arbiter calls it unconditionally.
///
/// What the master says and when:
///   READY=1, STATUS=, MAINPID=   each time the current generation is fully booted (start, each HUP)
///   RELOADING=1, MONOTONIC_USEC= on HUP (what Type=notify-reload waits for), then READY=1 again
///   STOPPING=1                   when a stop begins
///   WATCHDOG=1                   every WATCHDOG_USEC/2, from the master's loop, so a hung loop is noticed
///   STATUS=                      a one-line summary whenever it changes, at most once a second
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    public const string EnvNotifySocket = "NOTIFY_SOCKET", EnvWatchdogUsec = "WATCHDOG_USEC", EnvWatchdogPid = "WATCHDOG_PID";

    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _target;
    private readonly long _watchdogIntervalMs; // 0: no watchdog
    private long _nextPingMs;
    private long _nextStatusMs;
    private string _phase = "Starting";
    private string _lastStatus = "";
    private string _note = ""; // why the last reload was refused, shown until the next one
    private bool _sendFailed;

    private SystemdNotifier(Socket? socket, UnixDomainSocketEndPoint? target, long watchdogIntervalMs)
    {
        _socket = socket;
        _target = target;
        _watchdogIntervalMs = watchdogIntervalMs;
    }

    public bool Enabled => _socket is not null;
    public bool WatchdogEnabled => _watchdogIntervalMs > 0;

    /// <summary>Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. They stay set: a USR2 re-exec keeps the pid and needs them again.</summary>
    public static SystemdNotifier FromEnvironment()
    {
        var path = Environment.GetEnvironmentVariable(EnvNotifySocket);
        if (string.IsNullOrEmpty(path)) return new(null, null, 0);
        if (path[0] is not ('/' or '@'))
        {
            Log.Warning("{Var}={Value} is not a Unix socket path or @abstract name; not notifying systemd", EnvNotifySocket, path);
            return new(null, null, 0);
        }
        // An abstract socket's name starts with a NUL byte; systemd writes it as '@'.
        var target = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
        long interval = 0;
        var usec = Environment.GetEnvironmentVariable(EnvWatchdogUsec);
        var forPid = Environment.GetEnvironmentVariable(EnvWatchdogPid);
        if (long.TryParse(usec, out var us) && us > 0 && (string.IsNullOrEmpty(forPid) || forPid == Environment.ProcessId.ToString()))
            interval = Math.Max(1, us / 2000); // ping at half the timeout, as sd_watchdog_enabled(3) advises
        Log.Information("Notifying systemd at {Socket}{Watchdog}", path, interval > 0 ? $"; watchdog ping every {interval} ms" : "");
        return new(socket, target, interval);
    }

    /// <summary>The current generation serves: the first READY=1 ends start-up, later ones end a reload.</summary>
    public void Ready(StatusSnapshot status)
    {
        _phase = "Serving";
        SendStatus("READY=1\n", Summary(status), $"\nMAINPID={Environment.ProcessId}");
    }

    /// <summary>HUP (or a re-exec) begins: systemd holds `systemctl reload` until the next READY=1.</summary>
    public void Reloading(StatusSnapshot status)
    {
        _phase = "Reloading";
        _note = "";
        SendStatus($"RELOADING=1\nMONOTONIC_USEC={MonotonicMicroseconds()}\n", Summary(status));
    }

    /// <summary>A refused reload (bad config) still ends the reload: nothing changed, and the old workers serve.</summary>
    public void ReloadRefused(string reason)
    {
        _phase = "Serving";
        _note = "; last reload refused: " + OneLine(reason);
        SendStatus("READY=1\n", "Reload refused, still serving the previous configuration: " + OneLine(reason));
    }

    public void Stopping(StatusSnapshot status)
    {
        _phase = "Stopping";
        SendStatus("STOPPING=1\n", Summary(status));
    }

    /// <summary>Called on every turn of the master's loop: the watchdog ping when due, and STATUS= when it changed.</summary>
    public void Tick(StatusSnapshot status)
    {
        if (!Enabled) return;
        long now = Environment.TickCount64;
        if (WatchdogEnabled && now >= _nextPingMs)
        {
            Send("WATCHDOG=1");
            _nextPingMs = now + _watchdogIntervalMs;
        }
        if (now >= _nextStatusMs)
        {
            var text = Summary(status);
            if (text != _lastStatus) SendStatus("", text);
            _nextStatusMs = now + 1000;
        }
    }

    /// <summary>How long the loop may sleep and still ping the watchdog on time.</summary>
    public int SleepMs(int wanted) => WatchdogEnabled ? (int)Math.Min(wanted, Math.Max(10, _watchdogIntervalMs / 2)) : wanted;

    /// <summary>The STATUS= line, from the master's snapshot (its request total survives worker replacement).</summary>
    private string Summary(StatusSnapshot status)
    {
        var workers = status.Workers;
        int booted = status.ServingCurrent;
        int old = workers.Count(w => w.Generation != status.Generation && w.State is not (WorkerStates.Retiring or WorkerStates.Condemned));
        int retiring = workers.Count(w => w.State == WorkerStates.Retiring);
        var text = $"{_phase}: {booted} workers of generation {status.Generation} booted";
        if (old > 0) text += $", {old} of older generations serving";
        if (retiring > 0) text += $", {retiring} retiring";
        return text + $"; {status.Counters.Requests} requests served" + _note;
    }

    private void SendStatus(string before, string status, string after = "")
    {
        _lastStatus = status;
        Send(before + "STATUS=" + status + after);
    }

    private void Send(string message)
    {
        if (_socket is null) return;
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(message), _target!);
            _sendFailed = false;
        }
        catch (SocketException e)
        {
            // systemd gone, or its queue full: say so once, keep serving.
            if (!_sendFailed) Log.Warning("Could not notify systemd ({Message}): {Error}", message.Split('\n')[0], e.SocketErrorCode);
            _sendFailed = true;
        }
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");

    /// <summary>
    /// CLOCK_MONOTONIC in µs: systemd compares MONOTONIC_USEC with the time it sent the reload signal.
    /// On Linux Stopwatch reads CLOCK_MONOTONIC in ns (see Master/Monotonic.cs, and MonotonicClockTests).
    /// </summary>
    public static long MonotonicMicroseconds() => Stopwatch.GetTimestamp() / (Stopwatch.Frequency / 1_000_000);

    public void Dispose() => _socket?.Dispose();
}
