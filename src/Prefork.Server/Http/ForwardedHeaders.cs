using System.Net;
using Prefork.Config;
using Prefork.Gateway;

namespace Prefork.Http;

/// <summary>
/// What a trusted proxy may tell us about the client (forwarded_allow_ips, secure_scheme_headers):
/// its address, from Forwarded (RFC 7239) or else X-Forwarded-For, and its scheme, from
/// secure_scheme_headers and Forwarded's proto. From a peer not trusted, none of it counts.
/// </summary>
public sealed class ForwardedHeaders
{
    private readonly IpAllowList _trusted;
    private readonly KeyValuePair<string, string>[] _secureSchemeHeaders;

    public ForwardedHeaders(IpAllowList trusted, IEnumerable<KeyValuePair<string, string>> secureSchemeHeaders)
    {
        _trusted = trusted;
        _secureSchemeHeaders = secureSchemeHeaders.ToArray();
    }

    public static ForwardedHeaders From(GatewayConfig config) =>
        new(IpAllowList.Parse(config.Get(Settings.ForwardedAllowIps)), config.SecureSchemeHeaders);

    /// <summary>
    /// Sets REMOTE_ADDR, REMOTE_PORT and the URL scheme of <paramref name="env"/>: the connection's
    /// own, or what a trusted proxy says. Throws <see cref="HttpError"/> when its scheme headers disagree.
    /// </summary>
    public void Apply(RequestHeaders headers, ConnectionInfo connection, RequestEnvironment env)
    {
        env.RemoteAddr = connection.RemoteAddr;
        env.RemotePort = connection.RemotePort;
        env.UrlScheme = connection.Secure ? "https" : "http";
        if (!connection.IsUnixSocket && !_trusted.Contains(connection.RemoteIp)) return;

        string? scheme = null, schemeSource = null;
        string? forwarded = null, forwardedFor = null;
        foreach (var (name, value) in headers)
        {
            if (name.Equals("Forwarded", StringComparison.OrdinalIgnoreCase)) forwarded = forwarded is null ? value : forwarded + "," + value;
            else if (name.Equals("X-Forwarded-For", StringComparison.OrdinalIgnoreCase)) forwardedFor = forwardedFor is null ? value : forwardedFor + "," + value;
            foreach (var (secureName, secureValue) in _secureSchemeHeaders)
                if (name.Equals(secureName, StringComparison.OrdinalIgnoreCase))
                    Agree(ref scheme, ref schemeSource, value.Trim().Equals(secureValue, StringComparison.OrdinalIgnoreCase) ? "https" : "http", name);
        }

        // Forwarded is the standard; X-Forwarded-For only counts without it.
        var hops = forwarded is not null ? ParseForwarded(forwarded) : forwardedFor is not null ? ParseForwardedFor(forwardedFor) : null;
        if (hops is not null)
        {
            var client = WalkBack(hops, connection);
            env.RemoteAddr = client.Address;
            env.RemotePort = client.Port;
            if (client.Proto is { } proto)
            {
                if (!proto.Equals("http", StringComparison.OrdinalIgnoreCase) && !proto.Equals("https", StringComparison.OrdinalIgnoreCase))
                    throw HttpError.InvalidSchemeHeaders($"Forwarded proto={proto}");
                Agree(ref scheme, ref schemeSource, proto.ToLowerInvariant(), "Forwarded");
            }
        }
        env.UrlScheme = scheme ?? (connection.Secure ? "https" : "http");
    }

    private static void Agree(ref string? scheme, ref string? source, string claim, string header)
    {
        if (scheme is not null && scheme != claim)
            throw HttpError.InvalidSchemeHeaders($"{source} says {scheme} but {header} says {claim}");
        scheme = claim;
        source = header;
    }

    /// <summary>One proxy hop, as a proxy recorded it: who sent it the request, and on which scheme.</summary>
    private readonly record struct Hop(string? For, string? Proto);

    /// <summary>
    /// Walks the hops from the nearest proxy back towards the client, while each address is itself
    /// a trusted proxy; the first untrusted one is the client. So a client cannot forge its address
    /// by sending an X-Forwarded-For of its own: that entry lies beyond the first untrusted hop.
    /// </summary>
    private (string Address, string Port, string? Proto) WalkBack(List<Hop> hops, ConnectionInfo connection)
    {
        (string Address, string Port, string? Proto) client = (connection.RemoteAddr, connection.RemotePort, null);
        for (int i = hops.Count - 1; i >= 0; i--)
        {
            var hop = hops[i];
            if (!TryParseNode(hop.For, out var address, out var port))
            {
                // "unknown", an obfuscated name, or no for=: the chain stops here, with what this hop says of the scheme.
                client.Proto = hop.Proto;
                break;
            }
            client = (address.ToString(), port, hop.Proto);
            if (!_trusted.Contains(address)) break;
        }
        return client;
    }

    /// <summary>"192.0.2.60", "192.0.2.60:4711", "[2001:db8::1]:4711" or a bare "2001:db8::1".</summary>
    private static bool TryParseNode(string? node, out IPAddress address, out string port)
    {
        address = IPAddress.None;
        port = "";
        if (string.IsNullOrEmpty(node)) return false;
        var text = node.AsSpan();
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']');
            if (close < 0) return false;
            if (text.Length > close + 1)
            {
                if (text[close + 1] != ':') return false;
                port = text[(close + 2)..].ToString();
            }
            text = text[1..close];
        }
        else if (text.IndexOf(':') is var colon and >= 0 && text.LastIndexOf(':') == colon)
        {
            port = text[(colon + 1)..].ToString();
            text = text[..colon];
        }
        if (port.Length > 0 && (port.Length > 5 || port.AsSpan().IndexOfAnyExcept(RequestParser.Digits) >= 0)) return false;
        return IpAllowList.TryParseAddress(text, out address);
    }

    private static List<Hop> ParseForwardedFor(string value)
    {
        var hops = new List<Hop>();
        foreach (var entry in value.Split(',', StringSplitOptions.TrimEntries))
            hops.Add(new Hop(entry, null));
        return hops;
    }

    /// <summary>RFC 7239: elements separated by ',', pairs by ';', values a token or a quoted string.</summary>
    private static List<Hop> ParseForwarded(string value)
    {
        var hops = new List<Hop>();
        string? forNode = null, proto = null;
        int i = 0;
        while (i <= value.Length)
        {
            // one pair: name "=" value, then ';' (same element), ',' (next element) or the end
            int equals = value.IndexOf('=', i);
            int stop = value.IndexOfAny([',', ';'], i);
            if (equals < 0 || (stop >= 0 && stop < equals))
            {
                if (stop < 0) break;
                if (value[stop] == ',') { hops.Add(new Hop(forNode, proto)); forNode = proto = null; }
                i = stop + 1;
                continue;
            }
            var name = value.AsSpan(i, equals - i).Trim();
            int j = equals + 1;
            string pairValue;
            if (j < value.Length && value[j] == '"')
            {
                var sb = new System.Text.StringBuilder();
                for (j++; j < value.Length && value[j] != '"'; j++)
                {
                    if (value[j] == '\\' && j + 1 < value.Length) j++;
                    sb.Append(value[j]);
                }
                pairValue = sb.ToString();
                j++; // closing quote
            }
            else
            {
                int end = value.IndexOfAny([',', ';'], j);
                if (end < 0) end = value.Length;
                pairValue = value[j..end].Trim();
                j = end;
            }
            if (name.Equals("for", StringComparison.OrdinalIgnoreCase)) forNode = pairValue;
            else if (name.Equals("proto", StringComparison.OrdinalIgnoreCase)) proto = pairValue;
            // skip to the separator after the value
            while (j < value.Length && value[j] is not (',' or ';')) j++;
            if (j >= value.Length) break;
            if (value[j] == ',') { hops.Add(new Hop(forNode, proto)); forNode = proto = null; }
            i = j + 1;
        }
        hops.Add(new Hop(forNode, proto));
        return hops;
    }
}
