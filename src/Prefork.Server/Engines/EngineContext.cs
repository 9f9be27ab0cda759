using Prefork.Config;
using Prefork.Connections;
using Prefork.Http;

namespace Prefork.Engines;

/// <summary>
/// What an engine needs from the worker process that runs it: the config and HTTP limits, TLS, the
/// stop flag and deadline, the request slots the heartbeat reads, and a request handler for each
/// thread that serves. The worker process makes it (<c>WorkerContext</c>, which adds the application
/// behind <see cref="NewHandler"/>): the engines know nothing of the master, the pipe to it or the app.
/// </summary>
public abstract class EngineContext
{
    private readonly List<RequestSlot> _slots = [];

    public required GatewayConfig Config { get; init; }
    public required HttpLimits Limits { get; init; }
    /// <summary>certfile is set: every TCP connection speaks TLS (loaded once, when the worker booted).</summary>
    public TlsServer? Tls { get; init; }

    /// <summary>A connection's transport: <paramref name="socket"/> itself, or TLS over it.</summary>
    public Transport NewTransport(Transport socket) => Tls is null ? socket : new TlsTransport(socket, Tls);

    /// <summary>Set on TERM: stop accepting, finish what is in flight, then exit.</summary>
    public CancellationTokenSource Stopping { get; } = new();
    public bool IsStopping => Stopping.IsCancellationRequested;

    /// <summary>
    /// When a stopping worker stops waiting for idle and slow clients: just before the master's
    /// graceful_timeout, so the worker still ends on its own.
    /// </summary>
    public long StopDeadline() => Environment.TickCount64 + Math.Max(0, Config.Milliseconds(Settings.GracefulTimeout) - 1000);

    /// <summary>
    /// The handler one serving thread (or one request in flight on the epoll loop) answers requests
    /// with; <paramref name="slot"/> says which request it runs, for the heartbeat.
    /// </summary>
    public abstract IRequestHandler NewHandler(RequestSlot slot);

    public RequestSlot NewSlot()
    {
        var slot = new RequestSlot();
        lock (_slots) _slots.Add(slot);
        return slot;
    }

    /// <summary>Requests being served now (busy slots), for the heartbeat.</summary>
    public int ActiveRequests()
    {
        int busy = 0;
        lock (_slots)
            foreach (var slot in _slots)
                if (slot.Snapshot().BusyMs >= 0) busy++;
        return busy;
    }

    /// <summary>The longest-running request in this worker, for the heartbeat.</summary>
    public (long BusyMs, string Method, string Path) OldestRequest()
    {
        (long, string, string) oldest = (-1, "", "");
        lock (_slots)
            foreach (var slot in _slots)
            {
                var s = slot.Snapshot();
                if (s.BusyMs > oldest.Item1) oldest = s;
            }
        return oldest;
    }
}
