using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Prefork.SampleApp;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// What each worker class promises under many clients: fairness, slow clients, slow requests (the
/// engine in-process where no process behaviour is involved).
/// </summary>
[LongClass]
public sealed class WorkerClassConcurrencyTests
{
    [Fact]
    public void Sync_workers_serve_every_one_of_50_keep_alive_clients()
    {
        // 5 sync workers, 50 clients that would each happily keep their connection forever.
        using var server = WorkerClassTests.Start("sync", workers: 5);
        server.WaitForWorkers(5);
        const int clients = 50;
        var served = new bool[clients];
        using var everyoneServed = new CountdownEvent(clients);
        var until = DateTime.UtcNow.AddSeconds(40); // fair workers need a few seconds; starved clients wait forever
        var errors = new List<string>();

        var threads = Enumerable.Range(0, clients).Select(i => new Thread(() =>
        {
            Socket? socket = null;
            ResponseReader? reader = null;
            try
            {
                // Keep asking on one connection (reconnecting only when the server closes it) until all were served.
                while (!everyoneServed.IsSet && DateTime.UtcNow < until)
                {
                    if (socket is null)
                    {
                        socket = RawHttp.Connect(server.Port, 20_000);
                        reader = new ResponseReader(socket);
                    }
                    socket.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
                    HttpResponse r;
                    try { r = reader!.Read(); }
                    catch (Exception e) when (e is IOException or SocketException) { r = new HttpResponse(0, "", [], true); }
                    // Only answers within the time count: past it the hogs leave and everyone would get in.
                    if (r.Status == 200 && !served[i] && DateTime.UtcNow < until)
                    {
                        served[i] = true;
                        everyoneServed.Signal();
                    }
                    if (r.Closed)
                    {
                        socket.Dispose();
                        socket = null;
                    }
                    else Thread.Sleep(i % 3 * 5); // some clients pause between requests: idle keep-alive connections
                }
            }
            catch (Exception e)
            {
                lock (errors) errors.Add($"client {i}: {e.GetType().Name}: {e.Message}");
            }
            finally
            {
                socket?.Dispose();
            }
        }) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(90)), "a client thread hung");

        var starved = Enumerable.Range(0, clients).Where(i => !served[i]).ToList();
        Assert.True(starved.Count == 0, $"clients never answered: {string.Join(",", starved)}; errors: {string.Join("; ", errors)}");
    }

    [Theory]
    [InlineData("threads")]
    [InlineData("epoll")]
    public void A_slowloris_of_300_connections_does_not_stop_requests_being_served(string workerClass)
    {
        using var server = new InProcessWorker(WorkerClassTests.Toml(workerClass, "header_timeout = 3"), new SampleApplication());

        // 300 clients that start a request head and then send it one byte at a time, never finishing.
        var slow = Enumerable.Range(0, 300).Select(_ => RawHttp.Connect(server.Port)).ToList();
        var head = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + new string('a', 200));
        var closedByServer = new bool[slow.Count];
        using var stopDripping = new CancellationTokenSource();
        var drip = new Thread(() =>
        {
            for (int pos = 0; pos < head.Length && !stopDripping.IsCancellationRequested; pos++)
            {
                for (int i = 0; i < slow.Count; i++)
                {
                    if (closedByServer[i]) continue;
                    try { slow[i].Send(head, pos, 1, SocketFlags.None); }
                    catch (SocketException) { closedByServer[i] = true; }
                }
                Thread.Sleep(100);
            }
        }) { IsBackground = true };
        drip.Start();

        try
        {
            // Meanwhile, ordinary clients are answered.
            for (int i = 0; i < 20; i++)
            {
                var r = server.Get("/");
                Assert.Equal(200, r.Status);
                Thread.Sleep(50);
            }

            // And header_timeout ends every slow head: 408 (or a close), not a connection held forever.
            var until = DateTime.UtcNow.AddSeconds(30);
            for (int i = 0; i < slow.Count; i++)
            {
                slow[i].ReceiveTimeout = (int)Math.Max(1, (until - DateTime.UtcNow).TotalMilliseconds);
                var buffer = new byte[512];
                try
                {
                    int n = slow[i].Receive(buffer);
                    Assert.True(n == 0 || Encoding.ASCII.GetString(buffer, 0, n).StartsWith("HTTP/1.1 408 "), Encoding.ASCII.GetString(buffer, 0, n));
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { }
            }
        }
        finally
        {
            stopDripping.Cancel();
            drip.Join(TimeSpan.FromSeconds(10));
            slow.ForEach(s => s.Dispose());
        }
    }

    [Theory]
    [InlineData("threads")]
    [InlineData("epoll")]
    public void Keep_alive_connections_arriving_one_by_one_are_spread_over_the_workers(string workerClass)
    {
        // EPOLLEXCLUSIVE alone would wake the same (first waiting) worker for every one of them.
        using var server = WorkerClassTests.Start(workerClass, workers: 2);
        var workers = server.WaitForWorkers(2);
        // Both workers must be in their loops first: until one is, the other takes every connection. A
        // worker reports ready before its loop registers the listener, and on 2 busy cores that can
        // take seconds: ask for as long as that, not for a number of requests.
        var answered = new HashSet<int>();
        Assert.True(Wait.Until(() => answered.Add(ServedBy.Parse(server.Get("/pid")).Pid) && answered.Count == 2, TimeSpan.FromSeconds(30)),
            $"only {string.Join(", ", answered)} of {string.Join(", ", workers)} answered");
        Assert.Equal(workers.Order(), answered.Order());
        var sockets = new List<Socket>();
        try
        {
            var perWorker = new Dictionary<int, int>();
            for (int i = 0; i < 20; i++)
            {
                var s = RawHttp.Connect(server.Port);
                sockets.Add(s); // kept open: each worker keeps what it accepted
                s.Send("GET /pid HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
                var pid = ServedBy.Parse(new ResponseReader(s).Read()).Pid;
                perWorker[pid] = perWorker.GetValueOrDefault(pid) + 1;
                Thread.Sleep(20);
            }
            Assert.True(perWorker.Count == 2 && perWorker.Values.Min() >= 3, $"connections per worker: {string.Join(", ", perWorker.Values)}");
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public void An_epoll_request_that_awaits_longer_than_timeout_does_not_get_its_worker_killed()
    {
        // `timeout` is for a worker stuck in one request; an await holds nothing up.
        using var server = WorkerClassTests.Start("epoll", "timeout = 4");
        var pids = server.WaitForWorkers(1);
        var r = RawHttp.Get(server.Port, "/slow-async?ms=9000", timeoutMs: 20_000);
        Assert.Equal(200, r.Status);
        Assert.Equal(pids, server.WorkerPids());
        Assert.DoesNotContain("WORKER TIMEOUT", server.Log);
    }

    [Fact]
    public void Threads_a_keep_alive_request_waiting_for_a_busy_thread_past_keepalive_is_answered_not_dropped()
    {
        using var server = new InProcessWorker("worker_class = \"threads\"\nthreads = 1\nkeepalive = 1", new SampleApplication());
        var waiting = Enumerable.Range(0, 2).Select(_ => RawHttp.Connect(server.Port)).ToList();
        var readers = waiting.Select(s => new ResponseReader(s)).ToList();
        for (int i = 0; i < 2; i++)
        {
            waiting[i].Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
            Assert.False(readers[i].Read().Closed); // now idle keep-alive, with 1 s to send the next one
        }
        using var busy = RawHttp.Connect(server.Port);
        busy.Send("GET /slow?ms=2500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
        Thread.Sleep(300); // the only thread is busy now
        foreach (var s in waiting) s.Send("GET /pid HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray()); // sent in time, read late
        Assert.Equal(200, new ResponseReader(busy).Read().Status);
        foreach (var r in readers) Assert.Equal(200, r.Read().Status); // not closed as if idle
        waiting.ForEach(s => s.Dispose());
    }

    [Fact]
    public void One_epoll_worker_serves_50_slow_async_requests_at_once()
    {
        using var server = new InProcessWorker(WorkerClassTests.Toml("epoll"), new SampleApplication());
        var sockets = Enumerable.Range(0, 50).Select(_ => RawHttp.Connect(server.Port, 30_000)).ToList();
        try
        {
            var clock = Stopwatch.StartNew();
            foreach (var s in sockets) s.Send("GET /slow-async?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
            foreach (var s in sockets)
            {
                var r = new ResponseReader(s).Read();
                Assert.Equal(200, r.Status);
                Assert.Equal("slept\n", r.BodyText);
            }
            // One at a time would take 50 s; concurrently it is about one.
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }
}
