using System.Net.Sockets;
using Prefork.Config;
using Serilog;
using Prefork.Interop;
using Prefork.Connections;

namespace Prefork.Engines;

/// <summary>
/// The connection lifecycle of the worker classes whose waiting connections sit in an epoll set
/// (threads, epoll): accept, read and serve, park until the next bytes, time out, linger, close,
/// resume accepting, stop. The decisions live here once; the engines differ only in what
/// <c>threaded</c> selects, in how a request that awaits is carried (epoll), and in their loops.
/// </summary>
internal abstract class EventEngine : IWorkerEngine
{
    protected const ulong WakeToken = 0, LoopToken = 1, FirstListenerToken = 2;
    protected const uint InputEvents = Native.EPOLLIN | Native.EPOLLRDHUP;
    private const int ScanIntervalMs = 250;

    private readonly bool _threaded;
    private readonly int _acceptBatch;
    private readonly object _acceptLock = new(); // the listener set, accepting and pausing
    private WakeUp _wake = null!;
    private Registration[] _registrations = [];
    private long _nextScan;
    private int _scanning;
    private long _stopDeadline;
    private int _ioTimeoutMs;

    /// <param name="threaded">
    /// True: several threads serve (threads). A connection is claimed and handed on under its own
    /// lock, is armed one-shot so each event goes to one thread, and writes with blocking.
    /// False: one event loop serves (epoll), without locks; interest is level-triggered and the
    /// output the kernel does not take is queued for the loop.
    /// </param>
    /// <param name="acceptBatch">Connections taken per listener wake-up before the next one goes to a sibling worker.</param>
    protected EventEngine(bool threaded, int acceptBatch)
    {
        _threaded = threaded;
        _acceptBatch = acceptBatch;
    }

    protected EngineContext Context { get; private set; } = null!;
    protected ConnectionTable Table { get; private set; } = null!;
    protected Epoll Epoll { get; private set; } = null!;
    protected ListenerSet Listeners { get; private set; } = null!;
    private volatile bool _stopBegun;

    /// <summary>The exchange the calling thread serves requests with.</summary>
    protected abstract Exchange Exchange { get; }

    public abstract string Describe(GatewayConfig config);

    public void Run(EngineContext context, IReadOnlyList<Socket> listeners, WakeUp wake)
    {
        Context = context;
        _wake = wake;
        _ioTimeoutMs = context.Config.Milliseconds(Settings.Timeout);
        Table = new ConnectionTable(context.Config.Get(Settings.WorkerConnections), () => new Connection(context.Config, context.Limits, context.Stopping.Token, context.NewTransport(_threaded ? new BlockingTransport(_ioTimeoutMs) : new QueuedTransport())));
        _registrations = new Registration[Table.Capacity];
        using var epoll = Epoll = new Epoll(_threaded ? 1 : 1024);
        Listeners = new ListenerSet(listeners, Epoll, FirstListenerToken);
        Epoll.Add(wake.ReadFd, Native.EPOLLIN, WakeToken);
        _nextScan = Environment.TickCount64 + ScanIntervalMs;
        lock (_acceptLock) Listeners.Start();
        Loop();
        // The loop ends only once stopping with nothing open; a connection left here dies with the process.
        if (Table.Open > 0) Log.Error("Worker engine ended with {Open} connections still open", Table.Open);
    }

    /// <summary>Waits for events and hands each to <see cref="Dispatch"/>, calling <see cref="Housekeep"/> between rounds, until it says the worker is done.</summary>
    protected abstract void Loop();

    /// <summary>A connection has an event (it was claimed from the epoll set: one-shot for threads).</summary>
    protected abstract void OnConnectionEvent(Connection c, uint events);

    /// <summary>An event on one of the engine's own fds.</summary>
    protected virtual void OnOwnEvent(ulong token) { }

    /// <summary>epoll: the request just taken awaits; carry it until it completes.</summary>
    protected virtual void OnInFlight(Connection c, ValueTask<bool> pending) =>
        throw new InvalidOperationException("a blocking engine has no request in flight");

    protected void Dispatch(ulong token, uint events)
    {
        if (ConnectionTable.IsConnection(token))
        {
            if (Table.Find(token) is { } c) OnConnectionEvent(c, events);
        }
        else if (token == WakeToken) _wake.Drain();
        else if (Listeners.Find(token) is { } listener) Accept(listener);
        else OnOwnEvent(token);
    }

    /// <summary>Milliseconds the loop may wait before <see cref="Housekeep"/> is due.</summary>
    protected int UntilHousekeeping(long now) => (int)Math.Clamp(Volatile.Read(ref _nextScan) - now, 0, ScanIntervalMs);

    /// <summary>
    /// The periodic duties, after each round of events (on whichever thread comes first): begin
    /// stopping, time out what is due, resume accepting. False once the worker is done.
    /// </summary>
    protected bool Housekeep()
    {
        long now = Environment.TickCount64;
        if (Context.IsStopping && !_stopBegun) BeginStop();
        if (now >= Volatile.Read(ref _nextScan) && Interlocked.Exchange(ref _scanning, 1) == 0)
        {
            try
            {
                Volatile.Write(ref _nextScan, now + ScanIntervalMs);
                ScanDeadlines(now);
            }
            finally
            {
                Volatile.Write(ref _scanning, 0);
            }
        }
        ResumeAccepting(now);
        return !(_stopBegun && Table.Open == 0);
    }

    // ---- accepting ---------------------------------------------------------------------------------

    /// <summary>
    /// Accepts a few connections (serving each at once: most clients send the request with the
    /// handshake), then goes to the back of the listener's queue so the next wakes a sibling worker.
    /// </summary>
    private void Accept(ListenSocket listener)
    {
        for (int accepted = 0; accepted < _acceptBatch;)
        {
            Connection? c;
            using (Hold(_acceptLock))
            {
                // A thread may hold a listener event from before BeginStop paused the listeners. Once
                // stopping, nothing more is accepted (what waited was taken then; siblings take the rest),
                // so the connection count only falls and "none open" is final: the worker may exit.
                if (_stopBegun) return;
                c = Listeners.Accept(listener, Table);
                if (c is not null) accepted++;
                if (accepted > 0 && (c is null || accepted == _acceptBatch)) Listeners.Rotate(listener);
            }
            if (c is null) return;
            ReadAndServe(c);
        }
    }

    /// <summary>Accepting paused (at worker_connections, or after accept failed) and may start again.</summary>
    private void ResumeAccepting(long now)
    {
        // Checked without the lock first: this runs after every event, and while accepting is paused
        // (at worker_connections) taking the lock each time would serialise the threads on it.
        if (_stopBegun || !Listeners.MayResume(now) || Table.Open >= Table.Capacity) return;
        using (Hold(_acceptLock))
            if (!_stopBegun && Listeners.MayResume(now) && Table.Open < Table.Capacity) Listeners.Start();
    }

    // ---- serving -----------------------------------------------------------------------------------

    /// <summary>Reads what arrived, answers every whole request, then parks or closes the connection.</summary>
    protected void ReadAndServe(Connection c)
    {
        if (c.Receive() == ReceiveResult.Error) CloseNow(c);
        else Serve(c);
    }

    /// <summary>Answers every whole request received, then parks or closes the connection.</summary>
    protected void Serve(Connection c)
    {
        c.State = ConnectionState.Active;
        AfterServe(c, ServeRequests(c));
    }

    private ServeStep ServeRequests(Connection c)
    {
        try
        {
            var step = c.Serve(Exchange.Handler, Exchange.Writer, keepAliveAllowed: Table.Open < Table.Capacity, blocking: _threaded, out var pending);
            if (step == ServeStep.InFlight) OnInFlight(c, pending);
            return step;
        }
        catch (Exception e)
        {
            // A bug of ours must cost one connection, not the worker.
            Log.Error(e, "Unexpected error serving {Remote}; closing the connection", c.Info.RemoteAddr);
            c.Abort(); // closed without lingering
            return ServeStep.Close;
        }
    }

    /// <summary>What a connection waits for next: its output to drain, its next bytes, or its end.</summary>
    protected void AfterServe(Connection c, ServeStep step)
    {
        // A stopping worker parks an idle connection too: closing it now would race the client's next
        // request; that request is answered with Connection: close, or `keepalive` ends the wait.
        if (step == ServeStep.InFlight) return;
        if (step == ServeStep.NeedInput) Park(c);
        else if (c.QueuedBytes == 0 || c.Broken) Linger(c);
        else
        {
            using (Hold(c))
            {
                c.State = ConnectionState.Closing; // the last response is still going out
                c.Deadline = WriteDeadline(Environment.TickCount64);
                Watch(c, Native.EPOLLOUT);
            }
        }
    }

    /// <summary>Puts a connection back in the epoll set until it is readable, or can take its queued output (or its deadline passes).</summary>
    protected void Park(Connection c)
    {
        c.Reader.ReleaseIfEmpty();
        using (Hold(c))
        {
            long now = Environment.TickCount64;
            c.State = ConnectionState.Parked;
            if (c.QueuedBytes == 0)
            {
                c.SetReadDeadline(now);
                Watch(c, InputEvents);
                return;
            }
            // A client that does not read its responses gets no more of them computed.
            c.Deadline = WriteDeadline(now);
            Watch(c, c.QueuedBytes > QueuedTransport.ReadPauseBytes ? Native.EPOLLOUT : InputEvents | Native.EPOLLOUT);
        }
    }

    /// <summary>A client that takes none of our output for `timeout` seconds is given up on (never, with timeout = 0).</summary>
    protected long WriteDeadline(long now) => _ioTimeoutMs > 0 ? now + _ioTimeoutMs : 0;

    // ---- closing -----------------------------------------------------------------------------------

    /// <summary>Closes after a last response: shut our side, drop what the client still sends until it closes.</summary>
    protected void Linger(Connection c)
    {
        if (!c.BeginLingeringClose(Environment.TickCount64))
        {
            CloseNow(c);
            return;
        }
        using (Hold(c))
        {
            c.State = ConnectionState.Lingering;
            Watch(c, InputEvents);
        }
    }

    /// <summary>A lingering connection is readable: drop what came; closed once the client closed.</summary>
    protected void ContinueLingering(Connection c)
    {
        if (c.DiscardInput()) CloseNow(c);
        else Watch(c, InputEvents);
    }

    /// <summary>The request in flight fails at its next write and ends; then its connection is closed.</summary>
    protected void AbortInFlight(Connection c)
    {
        c.Abort();
        c.Deadline = 0;
        Watch(c, 0);
    }

    protected void CloseNow(Connection c)
    {
        if (c.State == ConnectionState.InFlight)
        {
            AbortInFlight(c); // closed when its request has finished
            return;
        }
        _registrations[ConnectionTable.SlotOf(c.Token)] = default; // closing the fd leaves the epoll set
        c.Close();
        Table.Return(c);
        ResumeAccepting(Environment.TickCount64); // room again below worker_connections
    }

    // ---- timeouts and stopping ---------------------------------------------------------------------

    /// <summary>
    /// Ends what waited past its deadline (once stopping, everything but a running request just
    /// before graceful_timeout): a lingering close is over, a client that stopped reading is given
    /// up on, a silent one hears 408 if it was in the middle of a request.
    /// </summary>
    private void ScanDeadlines(long now)
    {
        bool stopDue = _stopBegun && now >= _stopDeadline;
        for (int slot = 0; slot < Table.Used; slot++)
        {
            var c = Table[slot];
            if (c is null) continue;
            using (Hold(c))
            {
                if (c.State is ConnectionState.Free or ConnectionState.Active) continue; // Active: being served right now
                bool due = (c.Deadline != 0 && now >= c.Deadline) || (stopDue && c.State != ConnectionState.InFlight);
                if (!due) continue;
                if (c.State == ConnectionState.InFlight) // its client stopped reading the streamed body
                {
                    AbortInFlight(c);
                    continue;
                }
                if (c.State is ConnectionState.Lingering or ConnectionState.Closing || c.QueuedBytes > 0)
                {
                    CloseNow(c); // lingered long enough, or a client that stopped reading its responses
                    continue;
                }
                c.State = ConnectionState.Active; // a parked connection, claimed by this thread
            }
            if (!stopDue && !c.Reader.HasPartialRequest && ServeWaitingRequest(c)) continue;
            c.OnReadTimeout();
            if (c.Reader.HasPartialRequest) Linger(c);
            else CloseNow(c);
        }
    }

    /// <summary>
    /// An idle connection whose time is up may not be idle at all: with every thread busy, or the
    /// loop held up by a blocking app, its next request can wait unread in the kernel past
    /// `keepalive`. Read first; serve what came. True when that took a request (the connection is
    /// served, parked or closed as usual).
    /// </summary>
    private bool ServeWaitingRequest(Connection c)
    {
        int before = c.RequestsTaken;
        if (c.Receive() != ReceiveResult.Data) return false;
        var step = ServeRequests(c);
        if (step != ServeStep.Close && c.RequestsTaken == before) return false; // only part of a head: timed out like one
        AfterServe(c, step);
        return true;
    }

    private void BeginStop()
    {
        var waiting = new List<Connection>();
        using (Hold(_acceptLock))
        {
            if (_stopBegun) return;
            _stopDeadline = Context.StopDeadline();
            Listeners.Pause();
            // What already waits in the accept queue is served (keep-alive is off from now on).
            foreach (var listener in Listeners.Sockets)
                while (Listeners.Accept(listener, Table) is { } c) waiting.Add(c);
            // Said only now that they count as open: a sibling thread that saw "stopping, none open"
            // between the two would end the loop and leave them unanswered.
            _stopBegun = true;
        }
        foreach (var c in waiting) ReadAndServe(c);
    }

    // ---- the engine's differences ------------------------------------------------------------------

    /// <summary>
    /// Sets what epoll reports for the connection. One-shot (threads): re-armed each time, so each
    /// event goes to one thread. Level-triggered (epoll): changed only when it differs. No interest
    /// at all means no registration: epoll would still report a hang-up, again and again, for a
    /// connection whose request is still running.
    /// </summary>
    protected void Watch(Connection c, uint events)
    {
        ref var r = ref _registrations[ConnectionTable.SlotOf(c.Token)];
        if (events == 0)
        {
            if (r.Registered) Epoll.Remove(c.Fd);
            r = default;
            return;
        }
        if (_threaded) events |= Native.EPOLLONESHOT;
        else if (r.Registered && events == r.Interest) return;
        if (r.Registered) Epoll.Modify(c.Fd, events, c.Token);
        else Epoll.Add(c.Fd, events, c.Token);
        r = new Registration(true, events);
    }

    /// <summary>True when epoll reports exactly <paramref name="events"/> for the connection.</summary>
    protected bool Watches(Connection c, uint events)
    {
        var r = _registrations[ConnectionTable.SlotOf(c.Token)];
        return r.Registered && r.Interest == events;
    }

    /// <summary>Locks <paramref name="o"/> when several threads serve; nothing for the event loop.</summary>
    private Held Hold(object o) => new(_threaded ? o : null);

    private readonly ref struct Held
    {
        private readonly object? _locked;
        public Held(object? o)
        {
            _locked = o;
            if (o is not null) Monitor.Enter(o);
        }
        public void Dispose()
        {
            if (_locked is not null) Monitor.Exit(_locked);
        }
    }

    /// <summary>A connection's place in the epoll set, by slot of the <see cref="ConnectionTable"/>.</summary>
    private readonly record struct Registration(bool Registered, uint Interest);
}
