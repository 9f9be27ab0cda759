using System.Buffers.Binary;
using System.Net;
using System.Text;
using Prefork.Config;

namespace Prefork.Http;

public enum ProxyHeaderStatus { NeedMore, Parsed, Invalid }

/// <summary>
/// What a PROXY protocol header says about the connection. Both null when the proxy sent LOCAL,
/// UNKNOWN or a non-IP family: the connection's own addresses stand.
/// </summary>
public readonly record struct ProxyHeader(IPEndPoint? Source, IPEndPoint? Destination);

/// <summary>
/// The PROXY protocol (HAProxy's spec, versions 1 and 2) that load balancers such as HAProxy and
/// AWS NLB put before the first byte of HTTP to say who the client really is. A pure function
/// over the bytes received so far: need more, parsed (and how many bytes it took), or invalid.
/// </summary>
public static class ProxyProtocol
{
    private static ReadOnlySpan<byte> V1Prefix => "PROXY "u8;
    private static ReadOnlySpan<byte> V2Signature => "\r\n\r\n\0\r\nQUIT\n"u8;
    private const int V1MaxLength = 107; // the spec's bound, CRLF included
    private const int V2HeaderLength = 16;

    public static ProxyHeaderStatus TryParse(ReadOnlySpan<byte> input, out ProxyHeader header, out int consumed, out string error)
    {
        header = default;
        consumed = 0;
        error = "";
        if (IsPrefixOf(input, V1Prefix) || IsPrefixOf(input, V2Signature)) return ProxyHeaderStatus.NeedMore;
        if (input.StartsWith(V1Prefix)) return ParseV1(input, ref header, ref consumed, ref error);
        if (input.StartsWith(V2Signature)) return ParseV2(input, ref header, ref consumed, ref error);
        // The spec forbids guessing: with proxy_protocol on, a connection must start with a header.
        error = "the connection does not start with a PROXY protocol header";
        return ProxyHeaderStatus.Invalid;
    }

    /// <summary>True while <paramref name="input"/> is a proper beginning of <paramref name="whole"/> (so more may make it match).</summary>
    private static bool IsPrefixOf(ReadOnlySpan<byte> input, ReadOnlySpan<byte> whole) =>
        input.Length < whole.Length && whole.StartsWith(input);

    /// <summary>"PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 …", or "PROXY UNKNOWN[ anything]\r\n".</summary>
    private static ProxyHeaderStatus ParseV1(ReadOnlySpan<byte> input, ref ProxyHeader header, ref int consumed, ref string error)
    {
        var window = input[..Math.Min(input.Length, V1MaxLength)];
        int cr = window.IndexOf("\r\n"u8);
        if (cr < 0)
        {
            if (input.Length < V1MaxLength && window.IndexOf((byte)'\n') < 0) return ProxyHeaderStatus.NeedMore;
            error = "v1 line not terminated by CRLF within 107 bytes";
            return ProxyHeaderStatus.Invalid;
        }
        var line = Encoding.ASCII.GetString(window[..cr]);
        if (line.AsSpan().IndexOfAnyInRange('\0', '\x1f') >= 0 || line.AsSpan().IndexOfAnyInRange('\x7f', '\uffff') >= 0)
        {
            error = "v1 line has control or non-ASCII characters";
            return ProxyHeaderStatus.Invalid;
        }
        var parts = line.Split(' ');
        if (parts.Length >= 2 && parts[1] == "UNKNOWN")
        {
            consumed = cr + 2;
            return ProxyHeaderStatus.Parsed;
        }
        if (parts.Length != 6 || parts[1] is not ("TCP4" or "TCP6"))
        {
            error = $"v1 line is not \"PROXY TCP4|TCP6 SRC DST SPORT DPORT\": '{line}'";
            return ProxyHeaderStatus.Invalid;
        }
        bool v6 = parts[1] == "TCP6";
        if (!TryAddress(parts[2], v6, out var source) || !TryAddress(parts[3], v6, out var destination))
        {
            error = $"v1 addresses are not {(v6 ? "IPv6" : "IPv4")}: '{line}'";
            return ProxyHeaderStatus.Invalid;
        }
        if (!TryPort(parts[4], out int sourcePort) || !TryPort(parts[5], out int destinationPort))
        {
            error = $"v1 ports are not 0-65535: '{line}'";
            return ProxyHeaderStatus.Invalid;
        }
        header = new ProxyHeader(new IPEndPoint(source, sourcePort), new IPEndPoint(destination, destinationPort));
        consumed = cr + 2;
        return ProxyHeaderStatus.Parsed;
    }

    private static bool TryAddress(string text, bool v6, out IPAddress address)
    {
        if (!v6) return !text.Contains(':') & IpAllowList.TryParseAddress(text, out address);
        address = IPAddress.None;
        return text.Contains(':') && text.AsSpan().IndexOfAny('%', '/') < 0 && IPAddress.TryParse(text, out address!)
            && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
    }

    private static bool TryPort(string text, out int port)
    {
        port = 0;
        return text.Length is > 0 and <= 5 && text.AsSpan().IndexOfAnyExcept(RequestParser.Digits) < 0
            && int.TryParse(text, out port) && port <= 65535;
    }

    /// <summary>
    /// 12-byte signature, version/command, family/protocol, a big-endian length, then the addresses
    /// (and TLVs, which we skip). LOCAL (health checks from the proxy itself) keeps the real addresses.
    /// </summary>
    private static ProxyHeaderStatus ParseV2(ReadOnlySpan<byte> input, ref ProxyHeader header, ref int consumed, ref string error)
    {
        if (input.Length < V2HeaderLength) return ProxyHeaderStatus.NeedMore;
        int version = input[12] >> 4, command = input[12] & 0xf;
        int family = input[13];
        int length = BinaryPrimitives.ReadUInt16BigEndian(input[14..16]);
        if (version != 2 || command > 1)
        {
            error = $"v2 version/command byte 0x{input[12]:x2} is not 0x20 (LOCAL) or 0x21 (PROXY)";
            return ProxyHeaderStatus.Invalid;
        }
        if (input.Length < V2HeaderLength + length) return ProxyHeaderStatus.NeedMore;
        consumed = V2HeaderLength + length;
        var addresses = input.Slice(V2HeaderLength, length);
        if (command == 0) return ProxyHeaderStatus.Parsed; // LOCAL

        switch (family)
        {
            case 0x11 when length >= 12: // TCP over IPv4
                header = new ProxyHeader(
                    new IPEndPoint(new IPAddress(addresses[..4]), BinaryPrimitives.ReadUInt16BigEndian(addresses[8..10])),
                    new IPEndPoint(new IPAddress(addresses[4..8]), BinaryPrimitives.ReadUInt16BigEndian(addresses[10..12])));
                return ProxyHeaderStatus.Parsed;
            case 0x21 when length >= 36: // TCP over IPv6
                header = new ProxyHeader(
                    new IPEndPoint(new IPAddress(addresses[..16]), BinaryPrimitives.ReadUInt16BigEndian(addresses[32..34])),
                    new IPEndPoint(new IPAddress(addresses[16..32]), BinaryPrimitives.ReadUInt16BigEndian(addresses[34..36])));
                return ProxyHeaderStatus.Parsed;
            case 0x00: // UNSPEC
            case 0x31: // stream over a unix socket: no IP to report
                return ProxyHeaderStatus.Parsed;
            case 0x11 or 0x21:
                error = $"v2 address block of {length} bytes is too short for family 0x{family:x2}";
                return ProxyHeaderStatus.Invalid;
            default:
                error = $"v2 family/protocol 0x{family:x2} is not a stream over IPv4, IPv6 or a unix socket";
                return ProxyHeaderStatus.Invalid;
        }
    }
}
