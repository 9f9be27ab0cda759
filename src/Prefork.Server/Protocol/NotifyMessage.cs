using System.Globalization;

namespace Prefork.Protocol;

/// <summary>
/// One sd_notify(3) datagram from a command worker: newline-separated KEY=VALUE lines. The master
/// acts on systemd's own keys and on Prefork's heartbeat fields; any other key is ignored, as
/// systemd ignores what it does not know.
///   READY=1             it serves: it counts as booted (reload and recycling wait for this)
///   WATCHDOG=1          a heartbeat; from the first one on, silence for `timeout` condemns the worker
///   WATCHDOG=trigger    it asks to be treated as hung now
///   STATUS=TEXT         kept for the logs
///   STOPPING=1          it is shutting down
///   PREFORK_REQUESTS=N  requests served so far (max_requests counts these)
///   PREFORK_BUSY_MS=N   age of its oldest in-flight request, -1 when idle (`timeout` applies to it)
///   PREFORK_METHOD=…, PREFORK_PATH=…   that request, so a timeout names it
/// </summary>
public sealed record NotifyMessage(bool Ready, bool Watchdog, bool WatchdogTrigger, bool Stopping, string? Status, WorkerMessage.Heartbeat? Heartbeat)
{
    public const string Requests = "PREFORK_REQUESTS", BusyMs = "PREFORK_BUSY_MS", Method = "PREFORK_METHOD", Path = "PREFORK_PATH";

    public static NotifyMessage Parse(string datagram)
    {
        bool ready = false, watchdog = false, trigger = false, stopping = false;
        string? status = null, method = null, path = null;
        long? requests = null, busyMs = null;
        foreach (var line in datagram.Split('\n'))
        {
            int eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var value = line[(eq + 1)..];
            switch (line[..eq])
            {
                case "READY": ready |= value == "1"; break;
                case "WATCHDOG": watchdog |= value == "1"; trigger |= value == "trigger"; break;
                case "STOPPING": stopping |= value == "1"; break;
                case "STATUS": status = WorkerMessage.OneLine(value); break;
                case Requests: requests = Number(value); break;
                case BusyMs: busyMs = Number(value); break;
                case Method: method = WorkerMessage.OneLine(value.Length > 32 ? value[..32] : value); break;
                case Path: path = WorkerMessage.OneLine(value.Length > WorkerMessage.MaxPathLength ? value[..WorkerMessage.MaxPathLength] : value); break;
            }
        }
        WorkerMessage.Heartbeat? beat = null;
        if (requests is >= 0) // a heartbeat carries the count; without it, nothing of the request state is taken
            beat = busyMs is >= 0 ? new(requests.Value, busyMs.Value, method ?? "", path ?? "") : new(requests.Value, -1);
        return new NotifyMessage(ready, watchdog, trigger, stopping, status, beat);
    }

    private static long? Number(string text) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : null;
}
