using System.Net.Sockets;
using Prefork.Config;
using Serilog;
using Prefork.Interop;

namespace Prefork.Worker;

/// <summary>
/// worker_class = "threads": Gunicorn's gthread. `threads` threads serve requests with blocking
/// writes, at most `worker_connections` connections open. A connection occupies a thread only while
/// it has bytes to serve: whenever it must wait — between keep-alive requests, or in the middle of a
/// head that arrives slowly — it is parked in the worker's epoll set (one-shot), so idle and
/// slowloris clients hold a file descriptor, never a thread.
/// </summary>
/// <remarks>
/// There is no separate poller thread handing connections over: the idle threads themselves wait
/// in epoll_wait on the one set (leader/follower), and epoll gives each readiness event to one of
/// them, which serves that connection at once. That saves a thread hand-off (a futex wake and a
/// context switch) per request. A parked connection is claimed, and parked again, under its own
/// lock, so it is never served by two threads nor closed under one.
/// </remarks>
public sealed class ThreadWorker : IWorkerEngine
{
    private const ulong WakeToken = 0, FirstListenerToken = 2;
    private const int ScanIntervalMs = 250;

    private WorkerContext _context = null!;
    private ConnectionTable _table = null!;
    private Epoll _epoll = null!;
    private ListenerSet _listeners = null!;
    private WakeUp _wake = null!;
    private readonly Lock _acceptLock = new();  // the listener set, accepting and pausing
    private long _nextScan;
    private int _scanning;
    private volatile bool _stopBegun, _finished;
    private long _stopDeadline;

    public string Describe(GatewayConfig config) => $"threads ({config.Threads} threads, {config.WorkerConnections} connections)";

    public void Run(WorkerContext context, IReadOnlyList<Socket> listeners, WakeUp wake)
    {
        _context = context;
        _wake = wake;
        _table = new ConnectionTable(context.Config.WorkerConnections, () => new Connection(context, queueOutput: false));
        using var epoll = _epoll = new Epoll(1);
        _listeners = new ListenerSet(listeners, _epoll, FirstListenerToken);
        _epoll.Add(wake.ReadFd, Native.EPOLLIN, WakeToken);
        _nextScan = Environment.TickCount64 + ScanIntervalMs;
        lock (_acceptLock) _listeners.Start();

        var threads = Enumerable.Range(0, context.Config.Threads)
            .Select(i => new Thread(ServeEvents) { Name = $"worker thread {i}", IsBackground = true })
            .ToList();
        threads.ForEach(t => t.Start());
        foreach (var t in threads) t.Join();
    }

    /// <summary>Each thread: wait for one event, serve it, repeat; and take turns at the periodic duties.</summary>
    private void ServeEvents()
    {
        var exchange = new Exchange(_context);
        while (!_finished)
        {
            if (_epoll.WaitOne(ScanIntervalMs, out _, out ulong token))
            {
                try
                {
                    if (ConnectionTable.IsConnection(token)) OnReadable(token, exchange);
                    else if (token == WakeToken) _wake.Drain();
                    else if (_listeners.Find(token) is { } listener) Accept(listener, exchange);
                }
                catch (Exception e)
                {
                    Log.Error(e, "Unexpected error in a worker thread; carrying on");
                }
            }
            long now = Environment.TickCount64;
            if (_context.IsStopping && !_stopBegun) BeginStop(exchange);
            if (now >= Volatile.Read(ref _nextScan) && Interlocked.Exchange(ref _scanning, 1) == 0)
            {
                try
                {
                    Volatile.Write(ref _nextScan, now + ScanIntervalMs);
                    ScanDeadlines(now, exchange);
                    if (!_stopBegun) lock (_acceptLock) if (_listeners.MayResume(now) && _table.Open < _table.Capacity) _listeners.Start();
                }
                finally
                {
                    Volatile.Write(ref _scanning, 0);
                }
            }
            if (_stopBegun && _table.Open == 0) _finished = true;
        }
    }

    // ---- accepting ---------------------------------------------------------------------------------

    /// <summary>Accepts one connection and serves it on this thread; the next one wakes another thread or worker.</summary>
    private void Accept(ListenSocket listener, Exchange x)
    {
        Connection? c;
        lock (_acceptLock)
        {
            c = _listeners.Accept(listener, _table);
            if (c is not null) _listeners.Rotate(listener);
        }
        if (c is not null) Serve(c, x); // most clients send the request with the handshake: read at once
    }

    // ---- serving -----------------------------------------------------------------------------------

    private void OnReadable(ulong token, Exchange x)
    {
        var c = _table.Find(token);
        if (c is null) return;
        lock (c)
        {
            if (c.State == ConnectionState.Lingering)
            {
                if (c.DiscardInput()) CloseNow(c);
                else Arm(c);
                return;
            }
            if (c.State != ConnectionState.Parked) return;
            c.State = ConnectionState.Active;
        }
        Serve(c, x);
    }

    /// <summary>Reads what arrived, answers every whole request, then parks or closes the connection.</summary>
    private void Serve(Connection c, Exchange x)
    {
        try
        {
            var received = c.Receive();
            if (received == Connection.ReceiveResult.Error)
            {
                CloseNow(c);
                return;
            }
            var step = c.Serve(x, keepAliveAllowed: _table.Open < _table.Capacity, blocking: true, out _);
            // A stopping worker parks an idle connection too: closing it now would race the client's
            // next request; that request is answered with Connection: close, or `keepalive` ends the wait.
            if (step == ServeStep.Close) Linger(c);
            else Park(c);
        }
        catch (Exception e)
        {
            // A bug of ours must cost one connection, not the worker.
            Log.Error(e, "Unexpected error serving {Remote}; closing the connection", c.Info.RemoteAddr);
            CloseNow(c);
        }
    }

    /// <summary>Puts a connection back in the epoll set until it is readable (or its deadline passes).</summary>
    private void Park(Connection c)
    {
        c.Reader.ReleaseIfEmpty();
        lock (c)
        {
            c.SetReadDeadline(Environment.TickCount64);
            c.State = ConnectionState.Parked;
            Arm(c);
        }
    }

    /// <summary>Closes after a last response: shut our side, drop what the client still sends until it closes.</summary>
    private void Linger(Connection c)
    {
        if (!c.BeginLingeringClose(Environment.TickCount64))
        {
            CloseNow(c);
            return;
        }
        lock (c)
        {
            c.State = ConnectionState.Lingering;
            Arm(c);
        }
    }

    /// <summary>Re-arms the one-shot registration (under the connection's lock).</summary>
    private void Arm(Connection c)
    {
        const uint events = Native.EPOLLIN | Native.EPOLLRDHUP | Native.EPOLLONESHOT;
        if (c.Registered) _epoll.Modify(c.Fd, events, c.Token);
        else
        {
            _epoll.Add(c.Fd, events, c.Token);
            c.Registered = true;
        }
    }

    private void CloseNow(Connection c)
    {
        c.Close();
        _table.Return(c);
        if (!_listeners.Accepting && !_stopBegun)
            lock (_acceptLock)
                if (_listeners.MayResume(Environment.TickCount64)) _listeners.Start(); // room again below worker_connections
    }

    // ---- timeouts and stopping ---------------------------------------------------------------------

    /// <summary>Times out parked connections past their deadline (once stopping, at the latest just before graceful_timeout).</summary>
    private void ScanDeadlines(long now, Exchange x)
    {
        for (int slot = 0; slot < _table.Used; slot++)
        {
            var c = _table[slot];
            if (c is null) continue;
            lock (c)
            {
                if (c.State is not (ConnectionState.Parked or ConnectionState.Lingering)) continue;
                bool due = (c.Deadline != 0 && now >= c.Deadline) || (_stopBegun && now >= _stopDeadline);
                if (!due) continue;
                if (c.State == ConnectionState.Lingering)
                {
                    CloseNow(c);
                    continue;
                }
                c.State = ConnectionState.Active; // claimed by this thread
            }
            if (!c.Reader.HasPartialRequest && ServeWaitingRequest(c, x)) continue;
            c.OnReadTimeout();
            if (c.Reader.HasPartialRequest) Linger(c);
            else CloseNow(c);
        }
    }

    /// <summary>
    /// An idle connection whose time is up may not be idle at all: with every thread busy, its next
    /// request can wait unread in the kernel past `keepalive`. Read first; serve what came. True when
    /// that took a request (the connection is served, parked or closed as usual).
    /// </summary>
    private bool ServeWaitingRequest(Connection c, Exchange x)
    {
        int before = c.RequestsTaken;
        if (c.Receive() != Connection.ReceiveResult.Data) return false;
        var step = c.Serve(x, keepAliveAllowed: _table.Open < _table.Capacity, blocking: true, out _);
        if (step == ServeStep.Close) Linger(c);
        else if (c.RequestsTaken > before) Park(c);
        else return false; // only part of a head: it is timed out like one
        return true;
    }

    private void BeginStop(Exchange x)
    {
        var waiting = new List<Connection>();
        lock (_acceptLock)
        {
            if (_stopBegun) return;
            _stopDeadline = _context.StopDeadline();
            _stopBegun = true;
            _listeners.Pause();
            // What already waits in the accept queue is served (keep-alive is off from now on).
            foreach (var listener in _listeners.Sockets)
                while (_listeners.Accept(listener, _table) is { } c) waiting.Add(c);
        }
        foreach (var c in waiting) Serve(c, x);
    }
}
