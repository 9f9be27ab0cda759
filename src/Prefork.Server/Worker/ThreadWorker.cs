using System.Net.Sockets;
using Prefork.Config;
using Serilog;

namespace Prefork.Worker;

/// <summary>
/// worker_class = "threads": Gunicorn's gthread. A pool of `threads` threads serves requests with
/// blocking writes; one poller thread (the worker's main thread) owns an epoll set with the
/// listeners and every connection that is waiting for bytes. A connection is handed to the pool
/// only when it is readable, and goes back to the poller ("parked") whenever it has to wait —
/// between keep-alive requests, or in the middle of a head that arrives slowly — so idle and slow
/// clients hold a file descriptor, never a thread. At most `worker_connections` are open.
/// </summary>
/// <remarks>
/// Ownership: a parked connection belongs to the poller, an active one to the pool thread serving
/// it. Parking (state + deadline + re-arming the one-shot registration) happens under the
/// connection's lock, and so does the poller's claim on it, so a connection is never served twice
/// or closed under a thread.
/// </remarks>
public sealed class ThreadWorker : IWorkerEngine
{
    private const ulong WakeToken = 0, NotifyToken = 1, FirstListenerToken = 2;
    private const int AcceptBatch = 4;
    private const int ScanIntervalMs = 250;

    private WorkerContext _context = null!;
    private ConnectionTable _table = null!;
    private Epoll _epoll = null!;
    private ListenerSet _listeners = null!;
    private int _notifyFd = -1;                 // eventfd: a pool thread tells the poller something changed
    private readonly Queue<Connection?> _ready = new();
    private bool _stopBegun;
    private volatile bool _wantNotify;          // the poller waits for a slot to free (accepting paused) or for the end

    public string Describe(GatewayConfig config) => $"threads ({config.Threads} threads, {config.WorkerConnections} connections)";

    public unsafe void Run(WorkerContext context, IReadOnlyList<Socket> listeners, WakeUp wake)
    {
        _context = context;
        _table = new ConnectionTable(context.Config.WorkerConnections, () => new Connection(context, queueOutput: false));
        using var epoll = _epoll = new Epoll();
        _listeners = new ListenerSet(listeners, _epoll, FirstListenerToken);
        _notifyFd = Native.eventfd(0, Native.EFD_NONBLOCK | Native.EFD_CLOEXEC);
        _epoll.Add(wake.ReadFd, Native.EPOLLIN, WakeToken);
        _epoll.Add(_notifyFd, Native.EPOLLIN, NotifyToken);

        var pool = Enumerable.Range(0, context.Config.Threads)
            .Select(i => new Thread(ServeReadyConnections) { Name = $"worker thread {i}", IsBackground = true })
            .ToList();
        pool.ForEach(t => t.Start());

        _listeners.Start();
        long nextScan = Environment.TickCount64 + ScanIntervalMs;
        while (true)
        {
            int n = _epoll.Wait((int)Math.Clamp(nextScan - Environment.TickCount64, 0, ScanIntervalMs));
            for (int i = 0; i < n; i++)
            {
                ulong token = _epoll.Token(i);
                if (ConnectionTable.IsConnection(token)) OnReadable(token);
                else if (token == WakeToken) wake.Drain();
                else if (token == NotifyToken) { ulong count; Native.read(_notifyFd, (byte*)&count, sizeof(ulong)); }
                else if (_listeners.Find(token) is { } listener) Accept(listener);
            }
            long now = Environment.TickCount64;
            if (context.IsStopping && !_stopBegun) BeginStop();
            if (now >= nextScan)
            {
                ScanDeadlines(now);
                nextScan = now + ScanIntervalMs;
            }
            if (!_stopBegun && _listeners.MayResume(now) && _table.Open < _table.Capacity)
            {
                _listeners.Start();
                _wantNotify = false;
            }
            if (_stopBegun && _table.Open == 0) break;
        }

        lock (_ready)
        {
            foreach (var _ in pool) _ready.Enqueue(null); // one "stop" for each thread
            Monitor.PulseAll(_ready);
        }
        foreach (var t in pool) t.Join(TimeSpan.FromSeconds(5));
        Native.close(_notifyFd);
    }

    // ---- the poller --------------------------------------------------------------------------------

    private void Accept(ListenSocket listener)
    {
        // A few per wake-up, then to the back of the queue: the next connection wakes a sibling worker.
        int accepted = 0;
        while (accepted < AcceptBatch && AcceptOne(listener)) accepted++;
        if (accepted > 0) _listeners.Rotate(listener);
    }

    /// <summary>Accepts one waiting connection and hands it to the pool; false when none (or no room).</summary>
    private bool AcceptOne(ListenSocket listener)
    {
        var c = _table.Rent();
        if (c is null)
        {
            PauseAccepting(); // worker_connections reached; resumes when one closes
            return false;
        }
        var result = listener.TryAccept(out int fd, c.Info);
        if (result != ListenSocket.Result.Accepted)
        {
            _table.Return(c);
            if (result == ListenSocket.Result.Failed) PauseAccepting(resumeAfterMs: 1000);
            return false;
        }
        c.Open(fd);
        Dispatch(c); // most clients send the request with the handshake: try reading at once
        return true;
    }

    private void OnReadable(ulong token)
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
        Dispatch(c);
    }

    /// <summary>Times out parked connections past their deadline; once stopping, closes the idle ones.</summary>
    private void ScanDeadlines(long now)
    {
        for (int slot = 0; slot < _table.Used; slot++)
        {
            var c = _table[slot];
            if (c is null) continue;
            bool expired, idleAtStop = false;
            lock (c)
            {
                if (c.State is not (ConnectionState.Parked or ConnectionState.Lingering)) continue;
                expired = c.Deadline != 0 && now >= c.Deadline;
                if (c.State == ConnectionState.Parked)
                    idleAtStop = _stopBegun && !c.Reader.HasPartialRequest;
                if (!expired && !idleAtStop) continue;
                if (c.State == ConnectionState.Lingering)
                {
                    CloseNow(c);
                    continue;
                }
                c.State = ConnectionState.Active; // claimed by the poller
            }
            if (idleAtStop && !expired)
            {
                Dispatch(c); // a request that arrived at the last moment is still answered (with Connection: close)
                continue;
            }
            c.OnReadTimeout();
            if (c.Reader.HasPartialRequest) Linger(c);
            else CloseNow(c);
        }
    }

    private void BeginStop()
    {
        _stopBegun = true;
        PauseAccepting();
        // What already waits in the accept queue is served (keep-alive is off from now on).
        foreach (var listener in _listeners.Sockets)
            while (AcceptOne(listener)) { }
        ScanDeadlines(Environment.TickCount64);
    }



    /// <summary>Stops accepting; pool threads then tell the poller when a connection closes.</summary>
    private void PauseAccepting(int resumeAfterMs = 0)
    {
        _listeners.Pause(resumeAfterMs);
        _wantNotify = true;
    }

    // ---- the pool ----------------------------------------------------------------------------------

    private void Dispatch(Connection c)
    {
        lock (_ready)
        {
            _ready.Enqueue(c);
            Monitor.Pulse(_ready);
        }
    }

    private void ServeReadyConnections()
    {
        var exchange = new Exchange(_context);
        while (true)
        {
            Connection? c;
            lock (_ready)
            {
                while (_ready.Count == 0) Monitor.Wait(_ready);
                c = _ready.Dequeue();
            }
            if (c is null) return;
            try
            {
                Serve(c, exchange);
            }
            catch (Exception e)
            {
                // A bug of ours must cost one connection, not the worker.
                Log.Error(e, "Unexpected error serving {Remote}; closing the connection", c.Info.RemoteAddr);
                CloseNow(c);
            }
        }
    }

    /// <summary>On a pool thread: read what arrived, answer every whole request, then park or close.</summary>
    private void Serve(Connection c, Exchange x)
    {
        var received = c.Receive();
        if (received == Connection.ReceiveResult.Error)
        {
            CloseNow(c);
            return;
        }
        bool keepAliveAllowed = _table.Open < _table.Capacity;
        var step = c.Serve(x, keepAliveAllowed, blocking: true, out _);
        if (step == ServeStep.Close)
        {
            Linger(c);
            return;
        }
        if (_context.IsStopping && !c.Reader.HasPartialRequest)
        {
            CloseNow(c); // idle, and the worker is leaving
            return;
        }
        Park(c);
    }

    /// <summary>Hands a connection back to the poller until it is readable (or its deadline passes).</summary>
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

    /// <summary>Closes after a last response: shut our side, let the poller drop what the client still sends.</summary>
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

    private unsafe void CloseNow(Connection c)
    {
        c.Close();
        _table.Return(c);
        if (_wantNotify)
        {
            ulong one = 1;
            Native.write(_notifyFd, (byte*)&one, sizeof(ulong));
        }
    }
}
