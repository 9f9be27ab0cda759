using System.Text;
using Prefork.Http;

namespace Prefork.Tests.Http;

public sealed class RequestParserTests
{
    private static RequestHead Parse(string raw, HttpLimits? limits = null)
    {
        var head = new RequestHead();
        var bytes = Encoding.Latin1.GetBytes(raw);
        Assert.True(RequestParser.TryParseHead(bytes, head, limits ?? HttpLimits.Default, out int consumed));
        Assert.Equal(bytes.Length, consumed);
        return head;
    }

    private static int Status(string raw, HttpLimits? limits = null) =>
        Assert.Throws<HttpError>(() => Parse(raw, limits)).Status;

    [Fact]
    public void Parses_method_target_version_and_headers_with_repeats()
    {
        var h = Parse("GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept: b\r\n\r\n");
        Assert.Equal("GET", h.Method);
        Assert.Equal("/a?b=c", h.Target);
        Assert.Equal(1, h.VersionMinor);
        Assert.Equal("a, b", h.Headers["ACCEPT"]);
        Assert.Equal(["a", "b"], h.Headers.GetAll("Accept"));
        Assert.True(h.KeepAlive);
    }

    [Fact]
    public void An_incomplete_head_asks_for_more_at_every_split()
    {
        var raw = Encoding.ASCII.GetBytes("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n");
        var head = new RequestHead();
        for (int n = 0; n < raw.Length; n++)
            Assert.False(RequestParser.TryParseHead(raw.AsSpan(0, n), head, HttpLimits.Default, out _));
        Assert.True(RequestParser.TryParseHead(raw, head, HttpLimits.Default, out _));
        Assert.Equal(3, head.ContentLength);
    }

    [Theory]
    [InlineData("GET / HTTP/1.0\r\n\r\n", false)]
    [InlineData("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true)]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false)]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, Close\r\n\r\n", false)]
    public void Keep_alive_follows_HTTP_10_and_11_rules(string raw, bool keepAlive) =>
        Assert.Equal(keepAlive, Parse(raw).KeepAlive);

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400)]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400)]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400)]
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501)]
    [InlineData("GET / HTTP/1.1\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)]
    [InlineData("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505)]
    [InlineData("GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX: a\u0001b\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\nHost: x\r\n\r\n", 400)]
    [InlineData("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400)]
    [InlineData("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400)]
    [InlineData("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400)]
    [InlineData("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400)]
    public void Ambiguous_or_malformed_requests_are_refused_with_the_right_status(string raw, int status) =>
        Assert.Equal(status, Status(raw));

    [Fact]
    public void Limits_give_414_and_431()
    {
        var limits = new HttpLimits(20, 2, 30, 100);
        Assert.Equal(414, Status($"GET /{new string('a', 30)} HTTP/1.1\r\nHost: x\r\n\r\n", limits));
        Assert.Equal(431, Status("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", limits));
        Assert.Equal(431, Status($"GET / HTTP/1.1\r\nHost: x\r\nA: {new string('a', 40)}\r\n\r\n", limits));
        // Over the limit already before the line ends: refused without waiting for more.
        var head = new RequestHead();
        Assert.Equal(414, Assert.Throws<HttpError>(() =>
            RequestParser.TryParseHead(Encoding.ASCII.GetBytes("GET /" + new string('a', 40)), head, limits, out _)).Status);
    }

    [Fact]
    public void OPTIONS_star_and_absolute_form_are_accepted()
    {
        Assert.Equal("*", Parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").Target);
        Assert.Equal("http://x/p?q", Parse("GET http://x/p?q HTTP/1.1\r\nHost: x\r\n\r\n").Target);
        RequestProcessor.SplitTarget("http://x:81/p%20q?a=1", out var authority, out var path, out var query);
        Assert.Equal("x:81", authority);
        Assert.Equal("/p q", path);
        Assert.Equal("a=1", query);
        RequestProcessor.SplitTarget("/p?a=1", out authority, out path, out query);
        Assert.Null(authority);
        Assert.Equal("/p", path);
    }
}
