using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// The real binary, real sockets: workers share one listening socket and serve the sample app.
/// The tests that only send requests share one master with one worker.
/// </summary>
public sealed class ServingTests(SharedServers servers) : IClassFixture<SharedServers>
{
    [Fact]
    public void Requests_are_served_by_every_worker_process_sharing_one_socket()
    {
        using var server = PreforkServer.Start(workers: 3);
        var workers = server.WaitForWorkers(3);
        var served = new HashSet<int>();
        for (int i = 0; i < 600 && served.Count < 3; i++)
        {
            // Parallel clients, so a busy worker leaves the next connection to another.
            Parallel.For(0, 6, _ =>
            {
                var pid = ServedBy.Parse(server.Get("/pid")).Pid;
                lock (served) served.Add(pid);
            });
        }
        Assert.Equal(workers.Order(), served.Order());
    }

    [Fact]
    public void Hello_world_has_date_server_and_length()
    {
        var server = servers.Get();
        var r = server.Get("/");
        Assert.Equal(200, r.Status);
        Assert.Equal("Hello, World!", r.BodyText);
        Assert.Equal("13", r.Header("Content-Length"));
        Assert.NotNull(r.Header("Date"));
        Assert.Equal("prefork", r.Header("Server"));
    }

    [Fact]
    public void Worker_killed_with_SIGKILL_is_replaced_at_the_same_index_and_service_continues()
    {
        // The runtime's diagnostics pipes on, as in production (the tests turn them off for their children).
        using var server = PreforkServer.Start(workers: 2, environment: new Dictionary<string, string> { ["DOTNET_EnableDiagnostics"] = "1" });
        var before = server.WaitForWorkers(2);
        int victim = before[0];
        string VictimsRuntimeFiles() => string.Join(", ", Directory.EnumerateFiles(Path.GetTempPath(), $"*-{victim}-*")
            .Where(f => Path.GetFileName(f).StartsWith("clr-debug-pipe-") || Path.GetFileName(f).StartsWith("dotnet-diagnostic-")));
        Assert.NotEqual("", VictimsRuntimeFiles()); // what the runtime made for it, left behind by a kill
        Syscall.kill(victim, Signum.SIGKILL);
        // The other worker keeps serving while the replacement boots.
        for (int i = 0; i < 30; i++) Assert.Equal(200, server.Get("/").Status);
        var after = server.WaitForWorkers(2, also: pids => !pids.Contains(victim));
        Assert.Contains(before[1], after);
        server.WaitForLog("was killed by signal 9 (SIGKILL)", TimeSpan.FromSeconds(10));
        Assert.Equal("", VictimsRuntimeFiles()); // the master removed them when it reaped the worker
        var indexes = new HashSet<int>();
        // Until the replacement has booted only the survivor answers; on a loaded machine that takes a while.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (indexes.Count < 2 && DateTime.UtcNow < deadline)
            Parallel.For(0, 4, _ =>
            {
                var index = ServedBy.Parse(server.Get("/pid")).Index;
                lock (indexes) indexes.Add(index);
            });
        Assert.Equal([0, 1], indexes.Order());
    }

    [Theory]
    [InlineData(9000, 0, 414)]    // request line over limit_request_line (8190)
    [InlineData(10, 101, 431)]    // more than limit_request_fields (100)
    [InlineData(10, -9000, 431)]  // one field over limit_request_field_size (8190)
    public void Limits_answer_414_and_431(int pathLength, int fields, int expected)
    {
        var server = servers.Get();
        var headers = fields > 0
            ? string.Concat(Enumerable.Range(0, fields).Select(i => $"X-H{i}: v\r\n"))
            : $"X-Big: {new string('a', -fields)}\r\n";
        var r = RawHttp.Send(server.Port, $"GET /{new string('a', pathLength)} HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        Assert.Equal(expected, r.Status);
        Assert.True(r.Closed);
    }

    [Fact]
    public void Chunked_request_bodies_and_streamed_responses()
    {
        var server = servers.Get();
        var r = RawHttp.Send(server.Port,
            "POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
        Assert.Equal("hello world", r.BodyText);
        var s = server.Get("/stream?n=3");
        Assert.Equal("chunked", s.Header("Transfer-Encoding"));
        Assert.Equal("chunk 0\nchunk 1\nchunk 2\n", s.BodyText);
        var a = server.Get("/async-stream?n=2&ms=1");
        Assert.Equal("async chunk 0\nasync chunk 1\n", a.BodyText);
    }

    [Fact]
    public void Keep_alive_serves_several_requests_on_one_connection_and_HTTP10_closes()
    {
        var server = servers.Get();
        using var socket = RawHttp.Connect(server.Port);
        var reader = new ResponseReader(socket);
        // Pipelined: both requests in one packet, answered in order.
        socket.Send("GET /stream?n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        Assert.Equal("chunk 0\n", reader.Read().BodyText);
        var second = reader.Read();
        Assert.Equal("Hello, World!", second.BodyText);
        Assert.False(second.Closed);
        socket.Send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var head = reader.Read(isHead: true);
        Assert.Equal("13", head.Header("Content-Length"));
        Assert.Empty(head.Body);

        var old = RawHttp.Send(server.Port, "GET / HTTP/1.0\r\n\r\n");
        Assert.Equal(200, old.Status);
        Assert.True(old.Closed);
    }

    [Theory]
    [InlineData("/bytes/1m")]
    [InlineData("/pid")]
    [InlineData("/slow-async?ms=200")]
    public void A_response_the_client_reset_never_reaches_the_next_client(string path)
    {
        // Found by the bench: unsent bytes of a reset connection once led the next client's answer.
        var server = servers.Get();
        using (var gone = RawHttp.Connect(server.Port))
        {
            gone.LingerState = new System.Net.Sockets.LingerOption(true, 0); // close = RST
            gone.Send(System.Text.Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        }
        Thread.Sleep(500);
        var next = server.Get("/");
        Assert.Equal(200, next.Status);
        Assert.Equal("Hello, World!", next.BodyText);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", next.Head + "\r\n");
    }

    [Fact]
    public void Binds_ipv6_and_unix_sockets_too()
    {
        int port6 = PreforkServer.FreePort();
        var sock = Path.Combine(Path.GetTempPath(), $"prefork-{Guid.NewGuid():N}.sock");
        using var server = PreforkServer.Start($"bind = [\"127.0.0.1:{{port}}\", \"[::1]:{port6}\", \"unix:{sock}\"]", workers: 1);
        using (var v6 = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetworkV6, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp))
        {
            v6.Connect(System.Net.IPAddress.IPv6Loopback, port6);
            v6.Send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
            Assert.Equal("Hello, World!", new ResponseReader(v6).Read().BodyText);
        }
        using (var unix = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
        {
            unix.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(sock));
            unix.Send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
            Assert.Equal("Hello, World!", new ResponseReader(unix).Read().BodyText);
        }
        server.Signal(Signum.SIGTERM);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)));
        Assert.False(File.Exists(sock)); // the master removes the socket file it created
    }
}
