using Prefork.Config;
using Serilog;
using Prefork.Interop;
using Prefork.Connections;

namespace Prefork.Engines;

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
internal sealed class EpollWorker() : EventEngine(threaded: false, acceptBatch: 4)
{
    /// <summary>
    /// TLS handshake steps the loop takes per turn. A step that meets a ClientHello signs with the
    /// certificate's key (about a millisecond of CPU); a burst of new clients would otherwise hold up
    /// every established connection for as long as all their handshakes take. The rest wait: their
    /// sockets stay readable (level-triggered), so the next turn, which does not sleep, takes them.
    /// </summary>
    private const int HandshakeStepsPerTurn = 8;
    private int _handshakeSteps;
    private bool _handshakesDeferred;

    // The exchange requests that complete at once use; one whose request awaits is lent to its
    // connection (by slot) until it completes.
    private Exchange _exchange = null!;
    private Exchange?[] _lent = [];
    private readonly Stack<Exchange> _spareExchanges = new();
    private EventLoopContext _loop = null!;

    public override string Describe(GatewayConfig config) => $"epoll ({config.Get(Settings.WorkerConnections)} connections)";

    protected override Exchange Exchange => _exchange;

    protected override void Loop()
    {
        _exchange = new Exchange(Context);
        _lent = new Exchange?[Table.Capacity];
        using var loop = _loop = new EventLoopContext(Context.NewSlot());
        SynchronizationContext.SetSynchronizationContext(loop);
        Epoll.Add(loop.EventFd, Native.EPOLLIN, LoopToken);
        do
        {
            int timeout = _handshakesDeferred ? 0 : UntilHousekeeping(Environment.TickCount64);
            if (timeout > 0 && !loop.PrepareToSleep()) timeout = 0; // continuations queued: run them first
            int n = Epoll.Wait(timeout);
            loop.Awake();
            _handshakeSteps = 0;
            _handshakesDeferred = false;
            for (int i = 0; i < n; i++) Dispatch(Epoll.Token(i), Epoll.Flags(i));
            loop.RunPending();
        } while (Housekeep());
        loop.RunPending();
        SynchronizationContext.SetSynchronizationContext(null);
    }

    protected override void OnOwnEvent(ulong token)
    {
        if (token == LoopToken) _loop.OnWakeUp();
    }

    protected override void OnConnectionEvent(Connection c, uint events)
    {
        switch (c.State)
        {
            case ConnectionState.Lingering:
                ContinueLingering(c);
                return;
            case ConnectionState.InFlight:
                // Only output is watched while a request runs: keep its streamed body moving. Input
                // left watched (OnInFlight) is unwatched here, at its first event, or level-triggered
                // epoll would report it every turn until the request ends.
                if (!c.Transport.SendQueued()) AbortInFlight(c);
                else WatchInFlight(c);
                return;
        }
        if ((events & Native.EPOLLOUT) != 0 || c.QueuedBytes > 0)
        {
            if (!c.Transport.SendQueued())
            {
                CloseNow(c);
                return;
            }
            if (c.State == ConnectionState.Closing)
            {
                if (c.QueuedBytes == 0) Linger(c);
                else c.Deadline = WriteDeadline(Environment.TickCount64);
                return;
            }
        }
        if (c.Transport.Handshaking && ++_handshakeSteps > HandshakeStepsPerTurn)
        {
            _handshakesDeferred = true; // still registered and readable: reported again next turn
            return;
        }
        if ((events & (InputEvents | Native.EPOLLHUP | Native.EPOLLERR)) != 0 && c.QueuedBytes <= QueuedTransport.ReadPauseBytes)
            ReadAndServe(c);
        else Park(c);
    }

    // ---- requests in flight ------------------------------------------------------------------------

    protected override void OnInFlight(Connection c, ValueTask<bool> pending)
    {
        var x = _lent[ConnectionTable.SlotOf(c.Token)] = _exchange;
        // Awaiting is not being stuck: `timeout` watches the loop (continuations are timed as they run).
        x.Slot.End();
        _exchange = _spareExchanges.Count > 0 ? _spareExchanges.Pop() : new Exchange(Context);
        c.State = ConnectionState.InFlight;
        WatchInFlight(c, inputMayStay: true);
        _ = CompleteAsync(c, pending);
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
        int slot = ConnectionTable.SlotOf(c.Token);
        var x = _lent[slot]!;
        _lent[slot] = null;
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
        if (c.Broken) CloseNow(c);
        else if (!keepAlive) AfterServe(c, ServeStep.Close);
        else Serve(c); // requests pipelined behind it; then back to waiting
    }

    /// <param name="inputMayStay">
    /// When the request starts: a connection watched for input stays watched, since clients wait for the
    /// answer before they send more, so no event comes, and the loop saves the epoll_ctl calls that
    /// unwatch and watch it again (two syscalls per request, as many as its read and write). An event
    /// that does come (a pipelined request, a hang-up) unwatches it then (OnConnectionEvent).
    /// </param>
    private void WatchInFlight(Connection c, bool inputMayStay = false)
    {
        if (c.QueuedBytes > 0)
        {
            c.Deadline = WriteDeadline(Environment.TickCount64);
            Watch(c, Native.EPOLLOUT);
        }
        else
        {
            c.Deadline = 0; // the app is working; the master's `timeout` watches that
            if (!(inputMayStay && Watches(c, InputEvents))) Watch(c, 0);
        }
    }
}
