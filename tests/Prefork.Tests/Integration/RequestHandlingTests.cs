using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>One server with the echo app, shared by the tests of <see cref="RequestHandlingTests"/>.</summary>
public sealed class EchoServerFixture : IDisposable
{
    public PreforkServer Server { get; } = PreforkServer.Start(
        "app = \"Prefork.SampleApp:Prefork.SampleApp.EchoApplication\"\nlimit_request_body = 1000\nkeepalive = 10", workers: 1);

    public void Dispose() => Server.Dispose();
}

/// <summary>
/// What reaches the application, over real sockets: pipelining, keep-alive and Connection rules,
/// Expect: 100-continue, trailers, the target forms, versions and the body limit.
/// </summary>
public sealed class RequestHandlingTests(EchoServerFixture fixture) : IClassFixture<EchoServerFixture>
{
    private int Port => fixture.Server.Port;

    private static JsonElement Echo(HttpResponse r)
    {
        Assert.Equal(200, r.Status);
        return JsonDocument.Parse(r.Body).RootElement;
    }

    [Fact]
    public void Pipelined_requests_are_answered_in_order_and_the_connection_stays_open()
    {
        using var socket = RawHttp.Connect(Port);
        var reader = new ResponseReader(socket);
        socket.Send(Encoding.ASCII.GetBytes(
            "GET /first HTTP/1.1\r\nHost: x\r\n\r\n" +
            "POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
            "POST /third HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
        Assert.Equal("/first", Echo(reader.Read()).GetProperty("target").GetString());
        var second = Echo(reader.Read());
        Assert.Equal(("/second", "hello"), (second.GetProperty("target").GetString(), second.GetProperty("body").GetString()));
        var third = reader.Read();
        Assert.Equal(("/third", "abc"), (Echo(third).GetProperty("target").GetString(), Echo(third).GetProperty("body").GetString()));
        Assert.False(third.Closed);
        socket.Send("GET /fourth HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        Assert.Equal("/fourth", Echo(reader.Read()).GetProperty("target").GetString());
    }

    [Fact]
    public void An_answer_is_not_held_back_while_the_next_pipelined_body_is_still_coming()
    {
        using var socket = RawHttp.Connect(Port);
        var reader = new ResponseReader(socket);
        socket.Send("GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe"u8.ToArray());
        // The client may well wait for this answer before sending the rest.
        Assert.Equal("/first", Echo(reader.Read()).GetProperty("target").GetString());
        socket.Send("llo"u8.ToArray());
        Assert.Equal("hello", Echo(reader.Read()).GetProperty("body").GetString());
    }

    [Theory]
    [InlineData("HTTP/1.1", "", false, null)]
    [InlineData("HTTP/1.1", "Connection: close\r\n", true, "close")]
    [InlineData("HTTP/1.1", "Connection: keep-alive, Close\r\n", true, "close")]
    [InlineData("HTTP/1.0", "", true, "close")]
    [InlineData("HTTP/1.0", "Connection: Keep-Alive\r\n", false, "keep-alive")]
    public void Connection_rules_of_HTTP_10_and_11(string version, string connection, bool closes, string? responseConnection)
    {
        using var socket = RawHttp.Connect(Port);
        var reader = new ResponseReader(socket);
        socket.Send(Encoding.ASCII.GetBytes($"GET /a {version}\r\nHost: x\r\n{connection}\r\n"));
        var r = reader.Read();
        Assert.Equal(200, r.Status);
        Assert.Equal(responseConnection, r.Header("Connection"));
        if (closes)
        {
            Assert.True(reader.WaitForClose());
            return;
        }
        socket.Send(Encoding.ASCII.GetBytes($"GET /b {version}\r\nHost: x\r\n{connection}\r\n"));
        Assert.Equal("/b", Echo(reader.Read()).GetProperty("target").GetString());
    }

    [Fact]
    public void Expect_100_continue_is_answered_before_the_body_is_sent()
    {
        using var socket = RawHttp.Connect(Port);
        socket.Send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"u8.ToArray());
        var reader = new ResponseReader(socket);
        var interim = reader.Read();
        Assert.Equal(100, interim.Status);
        socket.Send("hello"u8.ToArray());
        Assert.Equal("hello", Echo(reader.Read()).GetProperty("body").GetString());
    }

    [Fact]
    public void A_body_over_the_limit_is_413_without_a_100_continue_and_never_reaches_the_app()
    {
        using var socket = RawHttp.Connect(Port);
        socket.Send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n"u8.ToArray());
        var reader = new ResponseReader(socket);
        var r = reader.Read();
        Assert.Equal(413, r.Status);
        Assert.Null(r.Header("X-Prefork-Echo"));
        Assert.True(reader.WaitForClose());

        var chunked = RawHttp.Send(Port, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + new string('a', 1001) + "\r\n0\r\n\r\n");
        Assert.Equal(413, chunked.Status);
    }

    [Fact]
    public void Trailers_of_a_chunked_body_reach_the_app_apart_from_the_headers()
    {
        var e = Echo(RawHttp.Send(Port,
            "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\nX-Checksum: abc\r\nContent-Type: text/plain\r\n\r\n"));
        Assert.Equal("hi", e.GetProperty("body").GetString());
        Assert.Equal([["X-Checksum", "abc"], ["Content-Type", "text/plain"]],
            e.GetProperty("trailers").EnumerateArray().Select(p => p.EnumerateArray().Select(v => v.GetString()).ToArray()).ToArray());
        Assert.DoesNotContain(e.GetProperty("headers").EnumerateArray(), h => h[0].GetString() == "X-Checksum");
    }

    [Fact]
    public void Absolute_form_and_asterisk_form_targets()
    {
        var e = Echo(RawHttp.Send(Port, "GET http://example.com:8080/a%20b?q=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n"));
        Assert.Equal("http://example.com:8080/a%20b?q=1", e.GetProperty("target").GetString());
        Assert.Equal("/a b", e.GetProperty("path").GetString());
        Assert.Equal("q=1", e.GetProperty("query").GetString());
        // RFC 9112 §3.2.2: the target's authority, not Host, names the server.
        Assert.Equal(("example.com", "8080"), (e.GetProperty("server_name").GetString(), e.GetProperty("server_port").GetString()));

        var options = Echo(RawHttp.Send(Port, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        Assert.Equal(("OPTIONS", "*"), (options.GetProperty("method").GetString(), options.GetProperty("target").GetString()));
    }

    [Theory]
    [InlineData("HTTP/2.0", 505)]
    [InlineData("HTTP/0.9", 505)]
    [InlineData("HTTP/1.10", 400)]
    [InlineData("http/1.1", 400)]
    public void Other_versions_are_refused(string version, int status)
    {
        using var socket = RawHttp.Connect(Port);
        socket.Send(Encoding.ASCII.GetBytes($"GET / {version}\r\nHost: x\r\n\r\n"));
        var reader = new ResponseReader(socket);
        Assert.Equal(status, reader.Read().Status);
        Assert.True(reader.WaitForClose());
    }

    [Fact]
    public void A_later_HTTP_1_minor_version_is_served_as_HTTP_11()
    {
        var e = Echo(RawHttp.Send(Port, "GET / HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n"));
        Assert.Equal("HTTP/1.1", e.GetProperty("protocol").GetString());
    }

    [Fact]
    public void A_request_smuggled_behind_ambiguous_framing_never_reaches_the_app()
    {
        using var socket = RawHttp.Connect(Port);
        socket.Send(Encoding.ASCII.GetBytes(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
            "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"));
        socket.Shutdown(SocketShutdown.Send);
        var all = new MemoryStream();
        var buffer = new byte[4096];
        for (int n; (n = socket.Receive(buffer)) > 0;) all.Write(buffer, 0, n);
        var text = Encoding.Latin1.GetString(all.ToArray());
        Assert.StartsWith("HTTP/1.1 400 ", text);
        Assert.DoesNotContain("smuggled", text);
        Assert.Equal(1, text.Split("HTTP/1.1 ").Length - 1);
    }

    [Fact]
    public void Forwarded_headers_from_the_local_peer_count_by_default_and_contradictions_are_400()
    {
        var e = Echo(RawHttp.Send(Port, "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"));
        Assert.Equal(("203.0.113.9", "https"), (e.GetProperty("remote_addr").GetString(), e.GetProperty("scheme").GetString()));
        var conflict = RawHttp.Send(Port, "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n");
        Assert.Equal(400, conflict.Status);
        Assert.True(conflict.Closed);
        Assert.Null(conflict.Header("X-Prefork-Echo"));
    }

    [Fact]
    public void Underscored_field_names_are_dropped_before_the_app()
    {
        var e = Echo(RawHttp.Send(Port, "GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nX-Real: 1\r\nConnection: close\r\n\r\n"));
        Assert.Equal(["Host", "X-Real", "Connection"], e.GetProperty("headers").EnumerateArray().Select(h => h[0].GetString()!).ToArray());
    }
}
