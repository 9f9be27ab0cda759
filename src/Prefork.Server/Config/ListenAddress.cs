using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Prefork.Config;

/// <summary>One `bind` entry: HOST:PORT, [IPV6]:PORT, unix:/path or fd://N.</summary>
public sealed record ListenAddress(string Text, EndPoint? EndPoint, int? InheritedFd)
{
    public bool IsUnix => EndPoint is UnixDomainSocketEndPoint;

    public static ListenAddress Parse(string text)
    {
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = text["unix:".Length..];
            if (path.Length == 0) throw new FormatException("expected unix:/path/to/socket");
            return new(text, new UnixDomainSocketEndPoint(path), null);
        }
        if (text.StartsWith("fd://", StringComparison.Ordinal))
        {
            if (!int.TryParse(text["fd://".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var fd) || fd < 3)
                throw new FormatException("expected fd://N with N >= 3");
            return new(text, null, fd);
        }
        int colon = text.LastIndexOf(':');
        if (colon <= 0) throw new FormatException("expected HOST:PORT, [IPV6]:PORT, unix:/path or fd://N");
        var host = text[..colon];
        if (!int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
            throw new FormatException($"port '{text[(colon + 1)..]}' is not a number from 0 to 65535");
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            if (!IPAddress.TryParse(host[1..^1], out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
                throw new FormatException($"'{host}' is not an IPv6 address");
            return new(text, new IPEndPoint(v6, port), null);
        }
        if (host.Contains(':')) throw new FormatException("write IPv6 addresses in brackets: [::1]:8000");
        if (IPAddress.TryParse(host, out var ip)) return new(text, new IPEndPoint(ip, port), null);
        if (host == "localhost") return new(text, new IPEndPoint(IPAddress.Loopback, port), null);
        // A host name: resolved when the master binds (DnsEndPoint).
        return new(text, new DnsEndPoint(host, port), null);
    }
}
