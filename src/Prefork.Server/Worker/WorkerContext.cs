using Prefork.Config;
using Prefork.Connections;
using Prefork.Gateway;
using Prefork.Http;
using Prefork.Logging;

namespace Prefork.Worker;

/// <summary>What every part of one worker process shares: its app, config, logs and counters.</summary>
public sealed class WorkerContext
{
    private readonly List<RequestSlot> _slots = [];
    private long _requests;

    public required GatewayConfig Config { get; init; }
    /// <summary>What <see cref="AppLoader"/> loaded: an <see cref="IGatewayApplication"/>, an <see cref="IAsyncGatewayApplication"/>, or both.</summary>
    public required object App { get; init; }
    public required WorkerInfo Info { get; init; }
    public required HttpLimits Limits { get; init; }
    public required TextWriter ErrorWriter { get; init; }
    public AccessLog? AccessLog { get; init; }
    public bool Multithread { get; init; }
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

    public long Requests => Interlocked.Read(ref _requests);
    public void CountRequest() => Interlocked.Increment(ref _requests);

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
