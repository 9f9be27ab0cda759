using Prefork.Config;
using Serilog;
using Prefork.Connections;

namespace Prefork.Engines;

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
/// lock, so it is never served by two threads nor closed under one (see <see cref="EventEngine"/>).
/// </remarks>
internal sealed class ThreadWorker() : EventEngine(threaded: true, acceptBatch: 1)
{
    [ThreadStatic] private static Exchange? t_exchange;
    private volatile bool _finished;

    public override string Describe(GatewayConfig config) => $"threads ({config.Get(Settings.Threads)} threads, {config.Get(Settings.WorkerConnections)} connections)";

    protected override Exchange Exchange => t_exchange!;

    protected override void Loop()
    {
        var threads = Enumerable.Range(0, Context.Config.Get(Settings.Threads))
            .Select(i => new Thread(ServeEvents) { Name = $"worker thread {i}", IsBackground = true })
            .ToList();
        threads.ForEach(t => t.Start());
        foreach (var t in threads) t.Join();
    }

    /// <summary>Each thread: wait for one event, serve it, repeat; and take turns at the periodic duties.</summary>
    private void ServeEvents()
    {
        t_exchange = new Exchange(Context);
        while (!_finished)
        {
            if (Epoll.WaitOne(UntilHousekeeping(Environment.TickCount64), out uint events, out ulong token))
            {
                try
                {
                    Dispatch(token, events);
                }
                catch (Exception e)
                {
                    Log.Error(e, "Unexpected error in a worker thread; carrying on");
                }
            }
            if (!Housekeep()) _finished = true;
        }
    }

    protected override void OnConnectionEvent(Connection c, uint events)
    {
        lock (c)
        {
            if (c.State == ConnectionState.Lingering)
            {
                ContinueLingering(c);
                return;
            }
            if (c.State != ConnectionState.Parked) return;
            c.State = ConnectionState.Active; // claimed by this thread
        }
        ReadAndServe(c);
    }
}
