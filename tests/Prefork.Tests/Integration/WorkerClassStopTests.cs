using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>The graceful-stop contract on keep-alive connections, for every worker class.</summary>
[LongClass]
public sealed class WorkerClassStopTests
{
    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void TERM_finishes_in_flight_and_answers_the_next_request_on_each_keep_alive_connection_with_close(string workerClass)
    {
        // sync serves one connection at a time: a second worker holds the other connection.
        using var server = WorkerClassTests.Start(workerClass, "keepalive = 10", workers: workerClass == "sync" ? 2 : 1);

        // An idle keep-alive connection.
        using var idle = RawHttp.Connect(server.Port);
        var idleReader = new ResponseReader(idle);
        idle.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        Assert.False(idleReader.Read().Closed);

        // A busy one: a streamed response under way, and the client's next request already sent.
        using var busy = RawHttp.Connect(server.Port);
        var busyReader = new ResponseReader(busy);
        // 5 chunks 0.8 s apart: the TERM the master passes on must reach the worker before the stream ends,
        // and on a loaded machine that can take a second or two.
        busy.Send("GET /async-stream?n=5&ms=800 HTTP/1.1\r\nHost: x\r\n\r\nGET /pid HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        // Its head is out: that response began before the stop.
        Assert.True(Wait.Until(() => busy.Available > 0, TimeSpan.FromSeconds(20)), "no response bytes within 20 s");

        server.Signal(Signum.SIGTERM);

        var first = busyReader.Read();
        Assert.Equal(200, first.Status);
        Assert.Equal(string.Concat(Enumerable.Range(0, 5).Select(i => $"async chunk {i}\n")), first.BodyText); // finished, not cut
        var next = busyReader.Read();
        Assert.Equal(200, next.Status);                  // the next request is still answered...
        Assert.Equal("close", next.Header("Connection")); // ...with Connection: close...
        Assert.True(busyReader.WaitForClose());          // ...then the connection ends

        // The idle connection was not cut under its client: its next request is answered, with close.
        idle.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var late = idleReader.Read();
        Assert.Equal(200, late.Status);
        Assert.Equal("close", late.Header("Connection"));
        Assert.True(idleReader.WaitForClose());

        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)), server.Log);
        Assert.Equal(0, server.Master.ExitCode);
        Assert.DoesNotContain("did not finish within graceful_timeout", server.Log);
    }

    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void A_stopping_worker_ends_an_idle_connection_with_keepalive_and_exits(string workerClass)
    {
        using var server = WorkerClassTests.Start(workerClass, "keepalive = 1");
        using var idle = RawHttp.Connect(server.Port);
        var reader = new ResponseReader(idle);
        idle.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        Assert.False(reader.Read().Closed);
        server.Signal(Signum.SIGTERM);
        Assert.True(reader.WaitForClose()); // nothing more sent: keepalive ends it (EOF, within the 10 s read timeout)
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)), server.Log);
        Assert.Equal(0, server.Master.ExitCode);
    }

    [Theory]
    [InlineData("threads")]
    [InlineData("epoll")]
    public void TERM_answers_a_request_in_flight_with_connection_close(string workerClass)
    {
        using var server = WorkerClassTests.Start(workerClass);
        using var socket = RawHttp.Connect(server.Port);
        var reader = new ResponseReader(socket);
        socket.Send("GET /slow-async?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        server.WaitUntilAllAccepted(); // in flight: the worker has taken it
        server.Signal(Signum.SIGTERM);
        var r = reader.Read();
        Assert.Equal(200, r.Status);
        Assert.Equal("slept\n", r.BodyText);
        Assert.Equal("close", r.Header("Connection")); // its client will not send another on this connection
        Assert.True(reader.WaitForClose());
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)), server.Log);
        Assert.Equal(0, server.Master.ExitCode);
    }
}
