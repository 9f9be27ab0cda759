using System.Text;
using Prefork.Config;
using Prefork.Http;
using Prefork.Tests.Conformance;

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

    /// <summary>The error's name and status, for a request that must be refused.</summary>
    private static (string Name, int Status) Refused(string raw)
    {
        var e = Assert.Throws<HttpError>(() => Parse(raw));
        return (e.Name, e.Status);
    }

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
        RequestTarget.Split("http://x:81/p%20q?a=1", out var authority, out var path, out var query);
        Assert.Equal("x:81", authority);
        Assert.Equal("/p q", path);
        Assert.Equal("a=1", query);
        RequestTarget.Split("/p?a=1", out authority, out path, out query);
        Assert.Null(authority);
        Assert.Equal("/p", path);
    }

    // RFC 9112 §3.2 and RFC 3986 §3.5: a fragment is for the client alone and is never sent.
    [Theory]
    [InlineData("GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /a?q=1# HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET http://x/p#f HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET http://x#f HTTP/1.1\r\nHost: x\r\n\r\n")]
    public void A_fragment_in_the_target_is_400(string raw) => Assert.Equal(("InvalidTarget", 400), Refused(raw));

    // RFC 9112 §3.2, RFC 3986 §2: a target is visible ASCII; anything else is percent-encoded by the client.
    [Theory]
    [InlineData("/caf\u00e9")]   // a raw 0xE9
    [InlineData("/\u0080")]
    [InlineData("/\u00ff")]
    [InlineData("/a\u0001b")]
    [InlineData("/a\tb")]
    [InlineData("/a\u007fb")]    // DEL
    [InlineData("/a\u0000b")]
    public void Bytes_other_than_visible_ASCII_in_the_target_are_400(string target) =>
        Assert.Equal(("InvalidTarget", 400), Refused($"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));

    [Fact]
    public void Every_visible_ASCII_byte_but_hash_is_allowed_in_the_target()
    {
        var target = "/" + new string(Enumerable.Range(0x21, 0x7e - 0x21 + 1).Select(b => (char)b).Where(c => c != '#').ToArray());
        Assert.Equal(target, Parse($"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").Target);
    }

    // RFC 9110 §9.3.6: CONNECT is for proxies; an origin server supports it for no resource (501, §15.6.2).
    [Theory]
    [InlineData("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")]
    [InlineData("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n")]
    [InlineData("CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n")]
    public void CONNECT_is_501(string raw) => Assert.Equal(("ConnectNotSupported", 501), Refused(raw));

    // RFC 9112 §3.2.3: authority-form is only for CONNECT.
    [Theory]
    [InlineData("GET example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n")]
    [InlineData("OPTIONS example.com:80 HTTP/1.1\r\nHost: example.com\r\n\r\n")]
    public void Authority_form_on_another_method_is_400(string raw) => Assert.Equal(("InvalidTarget", 400), Refused(raw));

    // RFC 9112 §3.2.4: asterisk-form is only for OPTIONS; the app sees PathInfo "*" (as under Gunicorn).
    [Fact]
    public void OPTIONS_star_reaches_the_app_as_path_star_and_star_with_another_method_is_400()
    {
        Assert.Equal("*", Parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").Target);
        RequestTarget.Split("*", out var authority, out var path, out var query);
        Assert.Equal((null, "*", ""), (authority, path, query));
        Assert.Equal(400, Status("POST * HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.Equal(400, Status("HEAD * HTTP/1.1\r\nHost: x\r\n\r\n"));
    }

    // RFC 9112 §3.2, §3.3: an empty Host means "no authority", which an http URI cannot have; only an
    // absolute-form target brings its own authority (and then Host is ignored, §3.2.2).
    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost:   \r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.0\r\nHost: \r\n\r\n", 400)]
    [InlineData("OPTIONS * HTTP/1.1\r\nHost: \r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400)]
    [InlineData("GET / HTTP/1.1\r\nHost: \r\nHost: x\r\n\r\n", 400)]
    [InlineData("GET http://x/ HTTP/1.1\r\nHost: \r\n\r\n", 0)]
    [InlineData("GET / HTTP/1.0\r\n\r\n", 0)]
    public void An_empty_Host_is_400_unless_the_target_names_the_authority_and_two_Hosts_are_400(string raw, int status)
    {
        if (status == 0) Parse(raw);
        else Assert.Equal(("InvalidHeader", status), Refused(raw));
    }

    // RFC 9112 §3: "A server that receives a method longer than any that it implements SHOULD respond with 501".
    [Fact]
    public void A_method_over_20_characters_is_501_even_when_the_line_is_also_over_the_limit()
    {
        Assert.Equal("ABCDEFGHIJKLMNOPQRST", Parse("ABCDEFGHIJKLMNOPQRST / HTTP/1.1\r\nHost: x\r\n\r\n").Method);
        Assert.Equal(("MethodTooLong", 501), Refused("ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\nHost: x\r\n\r\n"));
        var config = ConfigLoader.Parse(null, null);
        foreach (var line in new[] { new string('A', 9000) + " / HTTP/1.1\r\nHost: x\r\n\r\n", new string('A', 9000) })
        {
            var bytes = Encoding.ASCII.GetBytes(line);
            var whole = ParserReplay.Run(bytes, config, byteByByte: false);
            Assert.Equal(("MethodTooLong", (int?)501), (whole.Error, whole.Status));
            Assert.Equal("MethodTooLong", ParserReplay.Run(bytes, config, () => 1000).Error);
        }
        // A long line with a short method is still 414, and garbage without spaces is not a method.
        Assert.Equal(414, Status($"GET /{new string('a', 9000)} HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.Equal(414, Status($"GET/{new string('a', 9000)} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }

    // RFC 9112 §3: "It is RECOMMENDED that all HTTP senders and recipients support, at a minimum, request-line lengths of 8000 octets."
    [Fact]
    public void The_default_request_line_limit_is_8190_and_an_8000_byte_line_is_served()
    {
        Assert.Equal(8190, HttpLimits.Default.RequestLine);
        Assert.Equal(HttpLimits.Default, HttpLimits.From(ConfigLoader.Parse(null, null)));
        var path = "/" + new string('a', 8000 - "GET  HTTP/1.1".Length - 1);
        Assert.Equal(path, Parse($"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").Target);
        Assert.Equal(414, Status($"GET /{new string('a', 8190)} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }

    // RFC 9110 §10.1.1: 100-continue is the only expectation; a server MAY answer any other with 417.
    // An HTTP/1.0 request's expectations are ignored.
    [Theory]
    [InlineData("HTTP/1.1", "Expect: 100-continue\r\n", 0, true)]
    [InlineData("HTTP/1.1", "Expect: 100-Continue\r\n", 0, true)]
    [InlineData("HTTP/1.1", "Expect: 100-continue,\r\n", 0, true)]
    [InlineData("HTTP/1.1", "Expect:\r\n", 0, false)]
    [InlineData("HTTP/1.1", "", 0, false)]
    [InlineData("HTTP/1.1", "Expect: 200-ok\r\n", 417, false)]
    [InlineData("HTTP/1.1", "Expect: 100-continue, x\r\n", 417, false)]
    [InlineData("HTTP/1.1", "Expect: 100-continue\r\nExpect: x\r\n", 417, false)]
    [InlineData("HTTP/1.1", "Expect: 100-continue;a=b\r\n", 417, false)]
    [InlineData("HTTP/1.0", "Expect: 200-ok\r\n", 0, false)]
    [InlineData("HTTP/1.0", "Expect: 100-continue\r\n", 0, false)]
    public void An_expectation_other_than_100_continue_is_417(string version, string expect, int status, bool expectContinue)
    {
        var raw = $"POST / {version}\r\nHost: x\r\nContent-Length: 1\r\n{expect}\r\n";
        if (status == 0) Assert.Equal(expectContinue, Parse(raw).ExpectContinue);
        else Assert.Equal(("ExpectationFailed", status), Refused(raw));
    }

    [Fact]
    public void A_repeated_request_head_parses_without_allocating()
    {
        // The hot path: the target scan, Host, Connection and Expect checks allocate nothing once the
        // connection's strings are known (RecentStrings), for every request after the first.
        var raw = Encoding.ASCII.GetBytes("POST /items/42?sort=asc&page=2 HTTP/1.1\r\nHost: example.com:8080\r\n"
            + "Connection: keep-alive, Upgrade\r\nExpect: 100-continue\r\nContent-Length: 3\r\nAccept: */*\r\n\r\n");
        var head = new RequestHead();
        var limits = HttpLimits.Default;
        Assert.True(RequestParser.TryParseHead(raw, head, limits, out _));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) RequestParser.TryParseHead(raw, head, limits, out _);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(head.ExpectContinue);
    }
}
