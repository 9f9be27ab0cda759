using System.Text;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// An <c>IAsyncGatewayApplication</c> (the sample app's <c>AsyncSampleApplication</c>) in every
/// worker class: the status chosen after an await, failures after an await, many awaiting requests
/// in one epoll worker at once, and `timeout` and `max_requests` as for synchronous apps.
/// </summary>
[LongClass]
public sealed class AsyncApplicationTests(SharedServers servers) : IClassFixture<SharedServers>
{
    private const string AsyncApp = "app = \"Prefork.SampleApp:Prefork.SampleApp.AsyncSampleApplication\"\n";

    private static PreforkServer Start(string workerClass, string toml = "") => WorkerClassTests.Start(workerClass, AsyncApp + toml);

    /// <summary>The class's master of this worker class with the async app and nothing else set, shared by the tests that only send requests.</summary>
    private PreforkServer Shared(string workerClass) => servers.Get(WorkerClassTests.Toml(workerClass, AsyncApp));

    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void The_status_is_chosen_after_an_await(string workerClass)
    {
        var server = Shared(workerClass);

        var found = server.Get("/async/lookup?id=5&ms=50");
        Assert.Equal(200, found.Status);
        Assert.Equal("row 5: 9595\n", found.BodyText);
        var missing = server.Get("/async/lookup?id=0&ms=50");
        Assert.Equal(404, missing.Status);
        Assert.Equal("no row 0\n", missing.BodyText);

        // Completed at once, after a Task.Yield, and the synchronous routes the async app passes on.
        Assert.Equal("Hello, World!", server.Get("/async/hello").BodyText);
        Assert.Equal("Hello, World!", server.Get("/async/yield").BodyText);
        Assert.Equal("Hello, World!", server.Get("/").BodyText);

        // The body read with CopyToAsync, small (in memory) and over 64 KiB (in a temp file).
        foreach (int size in new[] { 5, 200_000 })
        {
            var text = new string('a', size);
            var r = RawHttp.Send(server.Port, $"POST /async/upper HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n{text}");
            Assert.Equal(200, r.Status);
            Assert.Equal(text.ToUpperInvariant(), r.BodyText);
        }

        // Pipelined behind and ahead of awaiting requests: answered in order on one connection.
        using var socket = RawHttp.Connect(server.Port);
        socket.Send(Encoding.ASCII.GetBytes(
            "GET /async/hello HTTP/1.1\r\nHost: x\r\n\r\n" +
            "GET /async/lookup?id=7&ms=200 HTTP/1.1\r\nHost: x\r\n\r\n" +
            "GET /async/lookup?id=99999&ms=10 HTTP/1.1\r\nHost: x\r\n\r\n" +
            "GET /async/yield HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        var reader = new ResponseReader(socket);
        Assert.Equal("Hello, World!", reader.Read().BodyText);
        Assert.Equal("row 7: 5433\n", reader.Read().BodyText);
        Assert.Equal(404, reader.Read().Status);
        var last = reader.Read();
        Assert.Equal("Hello, World!", last.BodyText);
        Assert.True(last.Closed);
    }

    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void An_exception_after_an_await_is_a_500_and_the_worker_lives(string workerClass)
    {
        var server = Shared(workerClass);
        var worker = server.WaitForWorkers(1)[0];

        var r = server.Get("/async/crash?ms=50");
        Assert.Equal(500, r.Status);
        server.WaitForLog("failed on purpose, after an await", TimeSpan.FromSeconds(20));
        // On a kept-alive connection too: the 500 (which ends the connection, as for a synchronous
        // app), and what was pipelined behind it is left unanswered rather than mixed up.
        using var socket = RawHttp.Connect(server.Port);
        socket.Send("GET /async/crash?ms=20 HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var failed = new ResponseReader(socket).Read();
        Assert.Equal(500, failed.Status);
        Assert.Equal("close", failed.Header("Connection"));
        Assert.True(failed.Closed);
        Assert.Equal(worker, ServedBy.Parse(server.Get("/pid")).Pid);
        Assert.Equal([worker], server.WorkerPids());
    }

    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void An_exception_after_bytes_of_the_response_left_closes_the_connection_without_ending_the_body(string workerClass)
    {
        var server = Shared(workerClass);
        var worker = server.WaitForWorkers(1)[0];
        using var socket = RawHttp.Connect(server.Port, 30_000);
        socket.Send("GET /async/stream-crash HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var received = new MemoryStream();
        var buffer = new byte[4096];
        int n;
        while ((n = socket.Receive(buffer)) > 0) received.Write(buffer, 0, n); // until the server closes
        var text = Encoding.ASCII.GetString(received.ToArray());
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", text);
        Assert.Contains("Transfer-Encoding: chunked", text);
        Assert.EndsWith("6\r\nfirst\n\r\n", text); // the first chunk, and no last chunk: the client knows the body is cut short
        server.WaitForLog("failed on purpose, mid-body", TimeSpan.FromSeconds(20));
        Assert.Equal(worker, ServedBy.Parse(server.Get("/pid")).Pid);
    }

    [Fact]
    public void Twenty_slow_async_requests_run_at_once_in_one_epoll_worker()
    {
        var server = Shared("epoll");
        server.WaitForWorkers(1);
        const int clients = 20;
        // Every request is sent before any answer is read (from this one thread: a pool thread per
        // client could start seconds late on a loaded machine, and the test would measure that).
        var sockets = Enumerable.Range(0, clients).Select(_ => RawHttp.Connect(server.Port, 120_000)).ToList();
        try
        {
            foreach (var socket in sockets) socket.Send("GET /async/stamps?ms=3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
            // Each answer says when its await began and ended (the worker's clock). Served one after
            // another, at most one would be in flight at any instant.
            var stamps = sockets.Select(socket =>
            {
                var r = new ResponseReader(socket).Read();
                Assert.Equal(200, r.Status);
                var f = r.BodyText.Trim().Split(' ').Select(long.Parse).ToArray();
                return (Pid: f[0], Start: f[1], End: f[2]);
            }).ToList();
            Assert.Single(stamps.Select(s => s.Pid).Distinct()); // one worker served them all
            int mostAtOnce = stamps.Max(a => stamps.Count(b => b.Start <= a.Start && a.Start < b.End));
            // All 20 overlap unless the machine stalls the worker for seconds while they arrive; half is
            // already impossible for a worker serving one request at a time.
            Assert.True(mostAtOnce >= clients / 2, $"at most {mostAtOnce} requests in flight at once: " +
                string.Join(", ", stamps.Select(s => $"{s.Start}-{s.End}")));
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    [Theory]
    [InlineData("sync")]
    [InlineData("threads")]
    public async Task A_hung_async_request_gets_its_worker_aborted_after_timeout(string workerClass)
    {
        // sync and threads wait for the task on the serving thread: the request is busy while it awaits.
        using var server = Start(workerClass, "timeout = 3");
        var before = server.WaitForWorkers(1);
        var hung = Task.Run(() => { try { return RawHttp.Get(server.Port, "/async/lookup?id=1&ms=120000", timeoutMs: 60_000).Status; } catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException) { return -1; } });
        server.WaitForLog("WORKER TIMEOUT", TimeSpan.FromSeconds(30));
        Assert.Matches(@"WORKER TIMEOUT: worker 0 \(pid \d+\) spent [\d.]+ s on GET /async/lookup \(timeout 3 s\)", server.Log);
        Assert.Equal(-1, await hung); // its connection died with the worker
        server.WaitForWorkers(1, also: p => !p.Contains(before[0]));
        Assert.Equal(200, server.Get("/async/hello").Status);
    }

    [Fact]
    public async Task On_epoll_a_request_blocking_the_loop_after_an_await_gets_its_worker_aborted_but_awaiting_is_not_hanging()
    {
        using var server = Start("epoll", "timeout = 2");
        var before = server.WaitForWorkers(1);

        // Awaiting longer than `timeout` holds no thread (Gunicorn's rule for its async workers): served.
        var waited = server.Get("/async/stamps?ms=4000");
        Assert.Equal(200, waited.Status);
        Assert.Equal((long)before[0], long.Parse(waited.BodyText.Split(' ')[0]));
        Assert.DoesNotContain("WORKER TIMEOUT", server.Log);

        // Blocking the loop is hanging: every connection of the worker waits, and the master aborts it.
        var hung = Task.Run(() => { try { return RawHttp.Get(server.Port, "/async/block?ms=120000", timeoutMs: 60_000).Status; } catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException) { return -1; } });
        server.WaitForLog("WORKER TIMEOUT", TimeSpan.FromSeconds(30));
        Assert.Matches(@"WORKER TIMEOUT: worker 0 \(pid \d+\) spent [\d.]+ s on ASYNC \(continuation\) \(timeout 2 s\)", server.Log);
        Assert.Equal(-1, await hung);
        server.WaitForWorkers(1, also: p => !p.Contains(before[0]));
        Assert.Equal(200, server.Get("/async/hello").Status);
    }

    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void Requests_that_awaited_count_towards_max_requests(string workerClass)
    {
        using var server = Start(workerClass, "max_requests = 10\nmax_requests_jitter = 0");
        var before = server.WaitForWorkers(1);
        for (int i = 0; i < 12; i++) Assert.Equal(200, server.Get("/async/yield").Status);
        server.WaitForLog("Recycling worker", TimeSpan.FromSeconds(30));
        server.WaitForWorkers(1, also: p => !p.Contains(before[0]));
    }
}
