using System.Text;
using Prefork.Config;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>Every worker class serves HTTP/1.1 the same way: the basics, run against each (one master per class, shared).</summary>
[LongClass]
public sealed class WorkerClassTests(SharedServers servers) : IClassFixture<SharedServers>
{
    /// <summary>Every worker_class the settings allow.</summary>
    public static TheoryData<string> Classes => new(Settings.WorkerClass.Choices!);

    /// <summary>One worker of the class (threads with a pool of 4: sync with threads > 1 would be threads too), plus extra TOML.</summary>
    internal static PreforkServer Start(string workerClass, string toml = "", int workers = 1) => PreforkServer.Start(Toml(workerClass, toml), workers);

    /// <summary>The config <see cref="Start"/> runs with.</summary>
    internal static string Toml(string workerClass, string toml = "") =>
        $"worker_class = \"{workerClass}\"\n{(workerClass == "threads" ? "threads = 4\n" : "")}{toml}";

    private PreforkServer Shared(string workerClass) => servers.Get(Toml(workerClass));

    [Theory, MemberData(nameof(Classes))]
    public void Hello_world(string workerClass)
    {
        var server = Shared(workerClass);
        var r = server.Get("/");
        Assert.Equal(200, r.Status);
        Assert.Equal("Hello, World!", r.BodyText);
        Assert.Equal("13", r.Header("Content-Length"));
        Assert.NotNull(r.Header("Date"));
        // "Booted: generation 1, epoll (1000 connections) worker": the worker's own line, which may
        // reach the shared output after the master's "Ready".
        server.WaitForLog($"Booted: generation 1, {workerClass}", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void Sync_with_more_than_one_thread_is_the_threads_class_as_in_gunicorn()
    {
        using var server = PreforkServer.Start("worker_class = \"sync\"\nthreads = 3", workers: 1);
        Assert.Equal(200, server.Get("/").Status);
        server.WaitForLog(", threads (3 threads", TimeSpan.FromSeconds(10));
    }

    [Theory, MemberData(nameof(Classes))]
    public void Keep_alive_and_pipelined_requests_are_answered_in_order_on_one_connection(string workerClass)
    {
        var server = Shared(workerClass);
        using var socket = RawHttp.Connect(server.Port);
        var reader = new ResponseReader(socket);
        // Three requests in one packet, one with a body.
        socket.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"u8.ToArray());
        Assert.Equal("Hello, World!", reader.Read().BodyText);
        Assert.Equal("chunk 0\nchunk 1\n", reader.Read().BodyText);
        var third = reader.Read();
        Assert.Equal("abcd", third.BodyText);
        Assert.False(third.Closed);
        // Then the same connection, later, one request at a time.
        for (int i = 0; i < 3; i++)
        {
            socket.Send("GET /pid HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
            Assert.Equal(200, reader.Read().Status);
        }
        socket.Send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
        Assert.True(reader.Read().Closed);
        Assert.True(reader.WaitForClose());
    }

    [Theory, MemberData(nameof(Classes))]
    public void Chunked_request_bodies_arriving_in_pieces_and_100_continue(string workerClass)
    {
        var server = Shared(workerClass);
        using var socket = RawHttp.Connect(server.Port);
        var reader = new ResponseReader(socket);
        socket.Send("POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"u8.ToArray());
        Thread.Sleep(200); // the rest arrives in a later read: the body is framed incrementally
        socket.Send("lo\r\n6;ext=1\r\n world\r\n0\r\n\r\n"u8.ToArray());
        Assert.Equal("hello world", reader.Read().BodyText);

        socket.Send("POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"u8.ToArray());
        Assert.Equal(100, reader.Read().Status); // the client waits for this before sending the body
        socket.Send("12345"u8.ToArray());
        var r = reader.Read();
        Assert.Equal(200, r.Status);
        Assert.Equal("12345", r.BodyText);
    }

    [Theory, MemberData(nameof(Classes))]
    public void Streamed_responses_sync_async_and_large(string workerClass)
    {
        var server = Shared(workerClass);
        var s = server.Get("/stream?n=3");
        Assert.Equal("chunked", s.Header("Transfer-Encoding"));
        Assert.Equal("chunk 0\nchunk 1\nchunk 2\n", s.BodyText);
        var a = server.Get("/async-stream?n=3&ms=20");
        Assert.Equal("chunked", a.Header("Transfer-Encoding"));
        Assert.Equal("async chunk 0\nasync chunk 1\nasync chunk 2\n", a.BodyText);
        // Larger than any socket buffer: the epoll worker queues what the kernel does not take.
        var big = server.Get("/bytes/6m");
        Assert.Equal(6 * 1024 * 1024, big.Body.Length);
        Assert.Equal((byte)'a', big.Body[0]);
        Assert.Equal((byte)('a' + (big.Body.Length - 1) % 26), big.Body[^1]);
    }

    [Theory, MemberData(nameof(Classes))]
    public void An_app_exception_is_a_500_and_the_worker_survives(string workerClass)
    {
        var server = Shared(workerClass);
        var pids = server.WaitForWorkers(1);
        using var socket = RawHttp.Connect(server.Port);
        var reader = new ResponseReader(socket);
        socket.Send("GET /crash HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var r = reader.Read();
        Assert.Equal(500, r.Status);
        Assert.True(r.Closed);
        Assert.Equal(200, server.Get("/").Status);
        Assert.Equal(pids, server.WorkerPids());
        server.WaitForLog("failed on purpose", TimeSpan.FromSeconds(10));
    }

    [Theory, MemberData(nameof(Classes))]
    public void A_malformed_request_gets_400_and_the_connection_closes(string workerClass)
    {
        var server = Shared(workerClass);
        var pids = server.WaitForWorkers(1);
        foreach (var bad in new[] { "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", "\x16\x03\x01 not http at all\r\n\r\n" })
        {
            using var socket = RawHttp.Connect(server.Port);
            socket.Send(Encoding.Latin1.GetBytes(bad));
            var reader = new ResponseReader(socket);
            var r = reader.Read();
            Assert.Equal(400, r.Status);
            Assert.Equal("close", r.Header("Connection"));
            Assert.True(reader.WaitForClose());
        }
        Assert.Equal(200, server.Get("/").Status);
        Assert.Equal(pids, server.WorkerPids());
    }
}
