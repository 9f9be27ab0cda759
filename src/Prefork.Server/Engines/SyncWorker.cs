using System.Net.Sockets;
using Serilog;
using Prefork.Interop;
using Prefork.Config;
using Prefork.Connections;

namespace Prefork.Engines;

/// <summary>
/// worker_class = "sync": Gunicorn's sync worker. One connection at a time, blocking. It keeps a
/// connection alive only while nobody else waits in the accept queue: a response is sent with
/// Connection: close when someone does, so keep-alive clients cannot starve the others. An idle
/// keep-alive connection is never closed under the client (it may be sending its next request
/// that very moment): it is ended by its next response, or by `keepalive` running out.
/// </summary>
public sealed unsafe class SyncWorker : IWorkerEngine
{
    private EngineContext _context = null!;
    private ListenSocket[] _listeners = [];
    private WakeUp _wake = null!;
    private Native.PollFd[] _fds = [];   // the connection, the wake-up pipe, then the listeners
    private long _acceptPausedUntil;      // accept failed (out of fds): the listeners stay readable, so wait

    public string Describe(Prefork.Config.GatewayConfig config) => "sync";

    public void Run(EngineContext context, IReadOnlyList<Socket> listeners, WakeUp wake)
    {
        _context = context;
        _wake = wake;
        _listeners = listeners.Select(l => new ListenSocket(l)).ToArray();
        _fds = new Native.PollFd[2 + _listeners.Length];
        _fds[1] = new Native.PollFd { Fd = wake.ReadFd, Events = Native.POLLIN };
        for (int i = 0; i < _listeners.Length; i++) _fds[2 + i] = new Native.PollFd { Fd = _listeners[i].Fd, Events = Native.POLLIN };
        var exchange = new Exchange(context);
        var connection = new Connection(context.Config, context.Limits, context.Stopping.Token, context.NewTransport(new BlockingTransport(context.Config.Milliseconds(Settings.Timeout))));

        while (!context.IsStopping)
        {
            // Wait for a client (or a signal); every idle sync worker wakes and races for it.
            _fds[0] = new Native.PollFd { Fd = -1 };
            long paused = _acceptPausedUntil - Environment.TickCount64;
            if (paused > 0)
            {
                if (Poll((int)paused, watchListeners: false) > 0 && (_fds[1].Revents & Native.POLLIN) != 0) wake.Drain();
                continue;
            }
            if (Poll(1000) <= 0) continue;
            if ((_fds[1].Revents & Native.POLLIN) != 0) wake.Drain();
            for (int i = 0; i < _listeners.Length && !context.IsStopping; i++)
                if ((_fds[2 + i].Revents & Native.POLLIN) != 0)
                    AcceptAndServe(_listeners[i], connection, exchange);
        }

        // Graceful stop: answer what already waits in the accept queue (with Connection: close), then leave.
        // Bounded: under steady load the queue never empties, and a worker still draining at
        // graceful_timeout would be killed in the middle of a response.
        long drainUntil = Environment.TickCount64 + 1000;
        foreach (var listener in _listeners)
            while (Environment.TickCount64 < drainUntil && AcceptAndServe(listener, connection, exchange)) { }
    }

    private bool AcceptAndServe(ListenSocket listener, Connection c, Exchange x)
    {
        var result = listener.TryAccept(out int fd, c.Info);
        if (result == ListenSocket.Result.Failed) _acceptPausedUntil = Environment.TickCount64 + 1000; // as ListenerSet does
        if (result != ListenSocket.Result.Accepted) return false;
        c.Open(fd);
        try
        {
            // Most clients send their request with the handshake: read before waiting.
            var first = c.Receive();
            bool open = first switch
            {
                ReceiveResult.Error => false,
                ReceiveResult.WouldBlock => WaitForInput(c),
                _ => true,
            };
            while (open)
            {
                var step = c.Serve(x.Handler, x.Writer, keepAliveAllowed: NobodyWaiting(), blocking: true, out _);
                if (step == ServeStep.Close)
                {
                    LingeringClose(c);
                    return true;
                }
                open = WaitForInput(c);
            }
        }
        catch (Exception e)
        {
            // A bug of ours must cost one connection, not the worker.
            Log.Error(e, "Unexpected error serving {Remote}; closing the connection", c.Info.RemoteAddr);
        }
        c.Close();
        return true;
    }

    /// <summary>
    /// Blocks until the client sent more bytes (true), or the connection should close (false): the
    /// wait timed out or the client went away. A stopping worker keeps waiting too: the request
    /// that arrives is answered with Connection: close (closing first would race the client).
    /// </summary>
    private bool WaitForInput(Connection c)
    {
        while (true)
        {
            long now = Environment.TickCount64;
            c.SetReadDeadline(now);
            _fds[0] = new Native.PollFd { Fd = c.Fd, Events = Native.POLLIN };
            int timeout = c.Deadline == 0 ? -1 : (int)Math.Clamp(c.Deadline - now, 0, int.MaxValue);
            int n = Poll(timeout, watchListeners: false);
            if (n == 0)
            {
                c.OnReadTimeout();
                return false;
            }
            if (n < 0) continue;
            if ((_fds[0].Revents & (Native.POLLIN | Native.POLLHUP | Native.POLLERR)) != 0)
            {
                var r = c.Receive();
                if (r is ReceiveResult.Data or ReceiveResult.Eof) return true;
                if (r == ReceiveResult.Error) return false;
                continue;
            }
            if ((_fds[1].Revents & Native.POLLIN) != 0) _wake.Drain();
        }
    }

    private bool NobodyWaiting()
    {
        for (int i = 0; i < _listeners.Length; i++)
            if ((Native.PollOne(_listeners[i].Fd, Native.POLLIN, 0) & Native.POLLIN) != 0) return false;
        return true;
    }

    /// <summary>
    /// After a last response: our FIN goes out first and what the client already sent is read and
    /// dropped, so the close does not reset the connection under a response still in flight. The sync
    /// worker does not wait for the client to close (it serves one connection at a time); the
    /// threads and epoll workers linger without blocking anyone.
    /// </summary>
    private static void LingeringClose(Connection c)
    {
        c.BeginLingeringClose(Environment.TickCount64);
        c.Close();
    }

    private int Poll(int timeoutMs, bool watchListeners = true)
    {
        int count = watchListeners ? _fds.Length : 2;
        int n;
        fixed (Native.PollFd* p = _fds)
        {
            for (int i = 0; i < _fds.Length; i++) p[i].Revents = 0;
            n = Native.poll(p, (nuint)count, timeoutMs);
        }
        return n < 0 && Native.Errno == Native.EINTR ? -1 : n;
    }
}
