using System.Globalization;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>One server with the sample app, shared by <see cref="ResponseFramingTests"/>.</summary>
public sealed class SampleServerFixture : IDisposable
{
    public PreforkServer Server { get; } = PreforkServer.Start("keepalive = 10", workers: 1);

    public void Dispose() => Server.Dispose();
}

/// <summary>How responses are framed: length, chunked, close-delimited; HEAD, 204, and the Date header.</summary>
public sealed class ResponseFramingTests(SampleServerFixture fixture) : IClassFixture<SampleServerFixture>
{
    private int Port => fixture.Server.Port;

    [Fact]
    public void HEAD_has_the_headers_of_GET_and_no_body_and_the_connection_carries_on()
    {
        using var socket = RawHttp.Connect(Port);
        var reader = new ResponseReader(socket);
        socket.Send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var head = reader.Read(isHead: true);
        Assert.Equal(("13", "text/plain"), (head.Header("Content-Length"), head.Header("Content-Type")));
        var streamedHead = reader.Read(isHead: true);
        Assert.Equal("chunked", streamedHead.Header("Transfer-Encoding"));
        // Had either HEAD carried a body, this would read it instead of the GET's response.
        var get = reader.Read();
        Assert.Equal("Hello, World!", get.BodyText);
    }

    [Fact]
    public void A_streamed_body_is_chunked_on_HTTP_11_and_ends_with_the_connection_on_HTTP_10()
    {
        var r11 = RawHttp.Send(Port, "GET /stream?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        Assert.Equal("chunked", r11.Header("Transfer-Encoding"));
        Assert.Equal("chunk 0\nchunk 1\nchunk 2\n", r11.BodyText);
        var r10 = RawHttp.Send(Port, "GET /stream?n=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        Assert.Null(r10.Header("Transfer-Encoding"));
        Assert.Null(r10.Header("Content-Length"));
        Assert.Equal("close", r10.Header("Connection"));
        Assert.Equal("chunk 0\nchunk 1\nchunk 2\n", r10.BodyText);
    }

    [Fact]
    public void No_content_has_neither_length_nor_body()
    {
        using var socket = RawHttp.Connect(Port);
        var reader = new ResponseReader(socket);
        socket.Send("GET /no-content HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var r = reader.Read();
        Assert.Equal(204, r.Status);
        Assert.Null(r.Header("Content-Length"));
        Assert.Null(r.Header("Transfer-Encoding"));
        Assert.Equal("Hello, World!", reader.Read().BodyText);
    }

    [Fact]
    public void Date_is_an_IMF_fixdate_of_now_on_every_response_even_errors()
    {
        foreach (var r in new[] { fixture.Server.Get("/"), RawHttp.Send(Port, "BAD\r\n\r\n") })
        {
            var date = DateTimeOffset.ParseExact(r.Header("Date")!, "r", CultureInfo.InvariantCulture);
            // The cached line may lag by a second; a generous bound keeps a loaded machine from failing it.
            Assert.InRange(date, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(5));
        }
    }
}
