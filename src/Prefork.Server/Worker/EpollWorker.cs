using System.Net.Sockets;
using Prefork.Config;
using Serilog;
using Prefork.Interop;

namespace Prefork.Worker;

/// <summary>
/// worker_class = "epoll": one thread, one non-blocking event loop over Linux epoll, holding up to
/// `worker_connections` keep-alive connections. Readiness drives everything: a readable connection
/// is read and every whole request in it answered at once; what the kernel does not take is queued
/// and sent when the socket is writable. A request whose body is asynchronous is left "in flight"
/// while the loop serves the others: the application's continuations run on the loop through
/// <see cref="EventLoopContext"/>, and the response finishes when its body does.
/// </summary>
/// <remarks>
/// Applications that block (Thread.Sleep, synchronous I/O, .Result) block every connection of the
/// worker: use async bodies, or the threads class, for those.
/// </remarks>
public sealed class EpollWorker : IWorkerEngine
{
    private const ulong WakeToken = 0, LoopToken = 1, FirstListenerToken = 2;
    private const int AcceptBatch = 4;
    private const int ScanIntervalMs = 250;

    private WorkerContext _context = null!;
    private ConnectionTable _table = null!;
    private Epoll _epoll = null!;
    private ListenerSet _listeners = null!;
    private bool _stopBegun;
    private long _stopDeadline;
    private int _ioTimeoutMs;
    // The exchange requests that complete at once use; one whose request awaits is lent to its connection.
    private Exchange _exchange = null!;
    private readonly Stack<Exchange> _spareExchanges = new();

    public string Describe(GatewayConfig config) => $"epoll ({config.WorkerConnections} connections)";

    public void Run(WorkerContext context, IReadOnlyList<Socket> listeners, WakeUp wake)
    {
        _context = context;
        _ioTimeoutMs = context.Config.Timeout > 0 ? context.Config.Timeout * 1000 : 0;
        _table = new ConnectionTable(context.Config.WorkerConnections, () => new Connection(context, queueOutput: true));
        _exchange = new Exchange(context);
        using var loop = new EventLoopContext(context.NewSlot());
        SynchronizationContext.SetSynchronizationContext(loop);
        using var epoll = _epoll = new Epoll(1024);
        _listeners = new ListenerSet(listeners, _epoll, FirstListenerToken);
        _epoll.Add(wake.ReadFd, Native.EPOLLIN, WakeToken);
        _epoll.Add(loop.EventFd, Native.EPOLLIN, LoopToken);
        _listeners.Start();

        long nextScan = Environment.TickCount64 + ScanIntervalMs;
        while (true)
        {
            int timeout = loop.HasWork ? 0 : (int)Math.Clamp(nextScan - Environment.TickCount64, 0, ScanIntervalMs);
            int n = _epoll.Wait(timeout);
            for (int i = 0; i < n; i++)
            {
                ulong token = _epoll.Token(i);
                if (ConnectionTable.IsConnection(token))
                {
                    if (_table.Find(token) is { } c) OnEvent(c, _epoll.Flags(i));
                }
                else if (token == WakeToken) wake.Drain();
                else if (token == LoopToken) loop.OnWakeUp();
                else if (_listeners.Find(token) is { } listener) Accept(listener);
            }
            loop.RunPending();

            long now = Environment.TickCount64;
            if (context.IsStopping && !_stopBegun) BeginStop();
            if (now >= nextScan)
            {
                ScanDeadlines(now);
                nextScan = now + ScanIntervalMs;
            }
            if (!_stopBegun && _listeners.MayResume(now) && _table.Open < _table.Capacity) _listeners.Start();
            if (_stopBegun && _table.Open == 0) break;
        }
        loop.RunPending();
        SynchronizationContext.SetSynchronizationContext(null);
    }

    // ---- events ------------------------------------------------------------------------------------

    private void Accept(ListenSocket listener)
    {
        // A few per wake-up, then to the back of the queue: the next connection wakes a sibling worker.
        int accepted = 0;
        while (accepted < AcceptBatch && AcceptOne(listener)) accepted++;
        if (accepted > 0) _listeners.Rotate(listener);
    }

    private bool AcceptOne(ListenSocket listener)
    {
        if (_listeners.Accept(listener, _table) is not { } c) return false;
        Read(c); // most clients send the request with the handshake
        return true;
    }

    private void OnEvent(Connection c, uint events)
    {
        switch (c.State)
        {
            case ConnectionState.Lingering:
                if (c.DiscardInput()) CloseNow(c);
                return;
            case ConnectionState.InFlight:
                // Only output is watched while a request runs: keep its streamed body moving.
                if (!c.SendQueued()) AbortInFlight(c);
                else WatchInFlight(c);
                return;
        }
        if ((events & Native.EPOLLOUT) != 0 || c.QueuedBytes > 0)
        {
            if (!c.SendQueued())
            {
                CloseNow(c);
                return;
            }
            if (c.State == ConnectionState.Active) // closing once the last response is out
            {
                if (c.QueuedBytes == 0) Linger(c);
                else c.Deadline = WriteDeadline(Environment.TickCount64);
                return;
            }
        }
        if ((events & (Native.EPOLLIN | Native.EPOLLHUP | Native.EPOLLERR | Native.EPOLLRDHUP)) != 0 && c.QueuedBytes <= Connection.ReadPauseBytes)
            Read(c);
        else AfterServe(c, ServeStep.NeedInput);
    }

    /// <summary>Reads what arrived and answers every whole request in it.</summary>
    private void Read(Connection c)
    {
        var received = c.Receive();
        if (received == Connection.ReceiveResult.Error)
        {
            CloseNow(c);
            return;
        }
        Serve(c);
    }

    // ---- the hot path ------------------------------------------------------------------------------

    private void Serve(Connection c)
    {
        c.State = ConnectionState.Active;
        ServeStep step;
        ValueTask<bool> inFlight;
        try
        {
            step = c.Serve(_exchange, keepAliveAllowed: _table.Open < _table.Capacity, blocking: false, out inFlight);
        }
        catch (Exception e)
        {
            // A bug of ours must cost one connection, not the worker.
            Log.Error(e, "Unexpected error serving {Remote}; closing the connection", c.Info.RemoteAddr);
            CloseNow(c);
            return;
        }
        if (step == ServeStep.InFlight)
        {
            c.Lent = _exchange;
            // Awaiting is not being stuck: `timeout` watches the loop (continuations are timed as they run).
            c.Lent.Slot.End();
            _exchange = _spareExchanges.Count > 0 ? _spareExchanges.Pop() : new Exchange(_context);
            c.State = ConnectionState.InFlight;
            WatchInFlight(c);
            _ = CompleteAsync(c, inFlight);
            return;
        }
        AfterServe(c, step);
    }

    /// <summary>On the loop, when an awaiting request finished: flush its tail, then carry on with the connection.</summary>
    private async Task CompleteAsync(Connection c, ValueTask<bool> inFlight)
    {
        bool keepAlive;
        try
        {
            keepAlive = await inFlight;
        }
        catch (Exception e)
        {
            Log.Error(e, "Unexpected error finishing a request from {Remote}", c.Info.RemoteAddr);
            keepAlive = false;
        }
        var x = c.Lent!;
        c.Lent = null;
        try
        {
            x.Writer.Flush();
        }
        catch (Http.ConnectionLostException)
        {
            x.Writer.Discard();
            keepAlive = false;
        }
        _spareExchanges.Push(x);
        c.State = ConnectionState.Active;
        if (c.Broken)
        {
            CloseNow(c);
            return;
        }
        if (!keepAlive) AfterServe(c, ServeStep.Close);
        else Serve(c); // requests pipelined behind it; then back to waiting
    }

    /// <summary>What a connection waits for next: its output to drain, its next bytes, or its end.</summary>
    private void AfterServe(Connection c, ServeStep step)
    {
        long now = Environment.TickCount64;
        // A stopping worker keeps an idle connection too: closing it now would race the client's next
        // request; that request is answered with Connection: close, or `keepalive` ends the wait.
        if (step == ServeStep.Close)
        {
            if (c.QueuedBytes == 0)
            {
                Linger(c);
                return;
            }
            c.State = ConnectionState.Active; // the last response is still going out
            c.Deadline = WriteDeadline(now);
            SetInterest(c, Native.EPOLLOUT);
            return;
        }
        c.State = ConnectionState.Parked;
        c.Reader.ReleaseIfEmpty();
        if (c.QueuedBytes == 0)
        {
            c.SetReadDeadline(now);
            SetInterest(c, Native.EPOLLIN | Native.EPOLLRDHUP);
        }
        else
        {
            // A client that does not read its responses gets no more of them computed.
            c.Deadline = WriteDeadline(now);
            SetInterest(c, c.QueuedBytes > Connection.ReadPauseBytes ? Native.EPOLLOUT : Native.EPOLLIN | Native.EPOLLRDHUP | Native.EPOLLOUT);
        }
    }

    private void WatchInFlight(Connection c)
    {
        if (c.QueuedBytes > 0)
        {
            c.Deadline = WriteDeadline(Environment.TickCount64);
            SetInterest(c, Native.EPOLLOUT);
        }
        else
        {
            c.Deadline = 0; // the app is working; the master's `timeout` watches that
            SetInterest(c, 0);
        }
    }

    /// <summary>A client that takes none of our output for `timeout` seconds is given up on (never, with timeout = 0).</summary>
    private long WriteDeadline(long now) => _ioTimeoutMs > 0 ? now + _ioTimeoutMs : 0;

    /// <summary>The request in flight fails at its next write and ends; then its connection is closed.</summary>
    private void AbortInFlight(Connection c)
    {
        c.Abort();
        c.Deadline = 0;
        SetInterest(c, 0);
    }

    private void Linger(Connection c)
    {
        if (!c.BeginLingeringClose(Environment.TickCount64))
        {
            CloseNow(c);
            return;
        }
        c.State = ConnectionState.Lingering;
        SetInterest(c, Native.EPOLLIN | Native.EPOLLRDHUP);
    }

    /// <summary>
    /// Changes what epoll reports for the connection (level-triggered). No interest at all means no
    /// registration: epoll would still report a hang-up, again and again, for a connection whose
    /// request is still running.
    /// </summary>
    private void SetInterest(Connection c, uint events)
    {
        if (events == c.Interest && c.Registered == (events != 0)) return;
        if (events == 0)
        {
            _epoll.Remove(c.Fd);
            c.Registered = false;
        }
        else if (c.Registered) _epoll.Modify(c.Fd, events, c.Token);
        else
        {
            _epoll.Add(c.Fd, events, c.Token);
            c.Registered = true;
        }
        c.Interest = events;
    }

    private void CloseNow(Connection c)
    {
        if (c.State == ConnectionState.InFlight)
        {
            AbortInFlight(c); // closed when its request has finished
            return;
        }
        c.Close();
        _table.Return(c);
    }

    // ---- timeouts, accepting, stopping -------------------------------------------------------------

    private void ScanDeadlines(long now)
    {
        for (int slot = 0; slot < _table.Used; slot++)
        {
            var c = _table[slot];
            if (c is null || c.State == ConnectionState.Free) continue;
            bool due = (c.Deadline != 0 && now >= c.Deadline) || (_stopBegun && now >= _stopDeadline && c.State != ConnectionState.InFlight);
            if (!due) continue;
            switch (c.State)
            {
                case ConnectionState.Lingering:
                    CloseNow(c);
                    break;
                case ConnectionState.InFlight: // its client stopped reading the streamed body
                    AbortInFlight(c);
                    break;
                default:
                    if (c.QueuedBytes > 0)
                    {
                        CloseNow(c); // a client that stopped reading its responses
                        break;
                    }
                    if (!c.Reader.HasPartialRequest && c.State == ConnectionState.Parked && !_stopBegun)
                    {
                        // Bytes may wait unread (a loop held up by a blocking app): read before calling it idle.
                        int before = c.RequestsTaken;
                        Read(c);
                        if (c.RequestsTaken > before || c.State == ConnectionState.Free) break;
                    }
                    c.OnReadTimeout();
                    if (c.Reader.HasPartialRequest) Linger(c);
                    else CloseNow(c);
                    break;
            }
        }
    }

    private void BeginStop()
    {
        _stopBegun = true;
        _stopDeadline = _context.StopDeadline();
        _listeners.Pause();
        // What already waits in the accept queue is served (keep-alive is off from now on).
        foreach (var listener in _listeners.Sockets)
            while (AcceptOne(listener)) { }
    }
}
