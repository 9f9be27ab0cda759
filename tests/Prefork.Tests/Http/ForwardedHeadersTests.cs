using System.Net;
using Prefork.Config;
using Prefork.Gateway;
using Prefork.Http;

namespace Prefork.Tests.Http;

/// <summary>Who may say what about the client: IpAllowList and ForwardedHeaders, called directly.</summary>
public sealed class ForwardedHeadersTests
{
    private static readonly KeyValuePair<string, string>[] GunicornSchemeHeaders =
        [new("X-FORWARDED-PROTOCOL", "ssl"), new("X-FORWARDED-PROTO", "https"), new("X-FORWARDED-SSL", "on")];

    [Theory]
    [InlineData("10.0.0.0/8", "10.200.3.4", true)]
    [InlineData("10.0.0.0/8", "11.0.0.1", false)]
    [InlineData("192.168.1.128/25", "192.168.1.200", true)]
    [InlineData("192.168.1.128/25", "192.168.1.127", false)]
    [InlineData("10.0.0.7/8", "10.9.9.9", true)] // bits past the prefix are ignored
    [InlineData("127.0.0.1", "::ffff:127.0.0.1", true)] // a dual-stack socket's view of an IPv4 peer
    [InlineData("fd00::/8", "fd12::1", true)]
    [InlineData("fd00::/8", "fe80::1", false)]
    [InlineData("::1", "127.0.0.1", false)]
    [InlineData("0.0.0.0/0", "203.0.113.9", true)]
    [InlineData("*", "2001:db8::9", true)]
    public void Allow_lists_match_addresses_and_cidr_blocks(string entry, string address, bool allowed) =>
        Assert.Equal(allowed, IpAllowList.Parse([entry]).Contains(IPAddress.Parse(address)));

    private static RequestEnvironment Apply(string allow, string peer, params (string Name, string Value)[] fields)
    {
        var headers = new RequestHeaders();
        foreach (var (name, value) in fields) headers.Add(name, value);
        var connection = new ConnectionInfo();
        connection.Set(new IPEndPoint(IPAddress.Parse(peer), 5555), new IPEndPoint(IPAddress.Loopback, 8000));
        var env = new RequestEnvironment();
        new ForwardedHeaders(IpAllowList.Parse(allow.Split(',')), GunicornSchemeHeaders).Apply(headers, connection, env);
        return env;
    }

    [Fact]
    public void An_untrusted_peer_changes_nothing()
    {
        var env = Apply("10.0.0.1", "192.0.2.1", ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"), ("Forwarded", "for=5.6.7.8;proto=https"));
        Assert.Equal("192.0.2.1", env.RemoteAddr);
        Assert.Equal("5555", env.RemotePort);
        Assert.Equal("http", env.UrlScheme);
    }

    [Fact]
    public void A_trusted_peer_sets_address_and_scheme()
    {
        var env = Apply("127.0.0.1", "127.0.0.1", ("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Proto", "https"));
        Assert.Equal("203.0.113.5", env.RemoteAddr);
        Assert.Equal("https", env.UrlScheme);
        Assert.Equal("http", Apply("127.0.0.1", "127.0.0.1", ("X-Forwarded-Proto", "http")).UrlScheme);
        Assert.Equal("https", Apply("127.0.0.1", "127.0.0.1", ("X-Forwarded-Ssl", "on")).UrlScheme);
    }

    [Fact]
    public void The_client_is_the_first_untrusted_hop_from_the_right()
    {
        // A client that sends its own X-Forwarded-For gets it appended to, not believed.
        var env = Apply("127.0.0.1,10.0.0.0/8", "127.0.0.1", ("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.2"));
        Assert.Equal("198.51.100.7", env.RemoteAddr);
        // Everyone trusted: the leftmost.
        Assert.Equal("6.6.6.6", Apply("*", "127.0.0.1", ("X-Forwarded-For", "6.6.6.6, 198.51.100.7")).RemoteAddr);
        // Several header lines are one list.
        Assert.Equal("198.51.100.8", Apply("127.0.0.1", "127.0.0.1", ("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.8")).RemoteAddr);
    }

    [Fact]
    public void Forwarded_is_preferred_and_understood()
    {
        var env = Apply("127.0.0.1", "127.0.0.1",
            ("X-Forwarded-For", "1.1.1.1"), ("Forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https;by=10.0.0.1"));
        Assert.Equal("2001:db8:cafe::17", env.RemoteAddr);
        Assert.Equal("4711", env.RemotePort);
        Assert.Equal("https", env.UrlScheme);
        env = Apply("127.0.0.1,10.0.0.0/8", "127.0.0.1", ("Forwarded", "for=192.0.2.60;proto=http, for=10.1.1.1;proto=https"));
        Assert.Equal("192.0.2.60", env.RemoteAddr);
        Assert.Equal("http", env.UrlScheme);
        // "unknown" stops the walk at the last address we know.
        Assert.Equal("127.0.0.1", Apply("127.0.0.1", "127.0.0.1", ("Forwarded", "for=unknown")).RemoteAddr);
    }

    [Theory]
    [InlineData("X-Forwarded-Proto", "https", "X-Forwarded-Ssl", "off")]        // Gunicorn's invalid/019
    [InlineData("X-Forwarded-Proto", "https", "Forwarded", "for=1.2.3.4;proto=http")]
    [InlineData("X-Forwarded-Protocol", "ssl", "X-Forwarded-Proto", "http")]
    [InlineData("Forwarded", "proto=gopher", "X-Other", "1")]
    public void Contradicting_scheme_headers_from_a_trusted_peer_are_refused(string name1, string value1, string name2, string value2)
    {
        var e = Assert.Throws<HttpError>(() => Apply("127.0.0.1", "127.0.0.1", (name1, value1), (name2, value2)));
        Assert.Equal("InvalidSchemeHeaders", e.Name);
        Assert.Equal(400, e.Status);
        // From an untrusted peer the same headers are just headers.
        Assert.Equal("http", Apply("10.0.0.1", "127.0.0.1", (name1, value1), (name2, value2)).UrlScheme);
    }
}
