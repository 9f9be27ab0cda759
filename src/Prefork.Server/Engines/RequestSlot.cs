using System.Diagnostics;

namespace Prefork.Engines;

/// <summary>
/// What one serving thread is doing right now, read by the heartbeat thread so the master can
/// say which request a hung worker was stuck on (method, path, for how long).
/// </summary>
public sealed class RequestSlot
{
    private long _startedTimestamp; // 0 when idle
    private string _method = "";
    private string _path = "";

    public void Begin(string method, string path)
    {
        _method = method;
        _path = path;
        Volatile.Write(ref _startedTimestamp, Stopwatch.GetTimestamp());
    }

    public void End() => Volatile.Write(ref _startedTimestamp, 0);

    /// <summary>Milliseconds the current request has run, or -1 when idle; with its method and path.</summary>
    public (long BusyMs, string Method, string Path) Snapshot()
    {
        long started = Volatile.Read(ref _startedTimestamp);
        if (started == 0) return (-1, "", "");
        return ((long)Stopwatch.GetElapsedTime(started).TotalMilliseconds, _method, _path);
    }
}
