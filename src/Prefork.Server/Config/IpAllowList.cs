using System.Net;
using System.Net.Sockets;

namespace Prefork.Config;

/// <summary>
/// The peers a setting such as <c>forwarded_allow_ips</c> trusts: addresses ("10.0.0.7", "::1"),
/// CIDR blocks ("10.0.0.0/8", "2001:db8::/32"), or "*" for everyone. IPv4-mapped IPv6 peers
/// (::ffff:10.0.0.7, as a dual-stack socket reports them) match their IPv4 entries.
/// </summary>
public sealed class IpAllowList
{
    private readonly IPNetwork[] _blocks;

    public bool AllowsAll { get; }

    private IpAllowList(bool allowsAll, IPNetwork[] blocks)
    {
        AllowsAll = allowsAll;
        _blocks = blocks;
    }

    /// <summary>Builds the list from entries already checked by <see cref="IsValidEntry"/> (the config loader does).</summary>
    public static IpAllowList Parse(IEnumerable<string> entries)
    {
        bool all = false;
        var blocks = new List<IPNetwork>();
        foreach (var entry in entries)
        {
            if (entry.Trim() == "*") { all = true; continue; }
            if (!TryParseEntry(entry, out var network))
                throw new FormatException($"'{entry}' is not an IP address, a CIDR block or \"*\"");
            blocks.Add(network);
        }
        return new IpAllowList(all, blocks.ToArray());
    }

    /// <summary>"*", an IP address, or ADDRESS/PREFIX with the prefix within the address's size.</summary>
    public static bool IsValidEntry(string entry) => entry.Trim() == "*" || TryParseEntry(entry, out _);

    private static bool TryParseEntry(string entry, out IPNetwork network)
    {
        network = default;
        var text = entry.AsSpan().Trim();
        int slash = text.IndexOf('/');
        if (!TryParseAddress(slash < 0 ? text : text[..slash], out var address)) return false;
        int maxBits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        int prefixBits = maxBits;
        if (slash >= 0)
        {
            var bitsText = text[(slash + 1)..];
            if (bitsText.Length is 0 or > 3 || bitsText.IndexOfAnyExceptInRange('0', '9') >= 0
                || !int.TryParse(bitsText, out prefixBits) || prefixBits > maxBits) return false;
        }
        network = new IPNetwork(address, prefixBits); // "10.0.0.7/8" is 10.0.0.0/8, as before
        return true;
    }

    /// <summary>A literal IPv4 (dotted quad only: "10.1" is not an address here) or IPv6 address, without a scope or port.</summary>
    internal static bool TryParseAddress(ReadOnlySpan<char> text, out IPAddress address)
    {
        address = IPAddress.None;
        if (text.IsEmpty || text.IndexOfAny('%', '/') >= 0) return false;
        if (text.Contains(':'))
        {
            if (!IPAddress.TryParse(text, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6) return false;
            address = v6.IsIPv4MappedToIPv6 ? v6.MapToIPv4() : v6;
            return true;
        }
        // Strict dotted decimal: IPAddress.TryParse would also read "10.1" and octal "010.0.0.1".
        Span<byte> octets = stackalloc byte[4];
        int part = 0;
        foreach (var range in text.Split('.'))
        {
            var digits = text[range];
            if (part == 4 || digits.Length is 0 or > 3 || digits.IndexOfAnyExceptInRange('0', '9') >= 0
                || (digits.Length > 1 && digits[0] == '0') || !int.TryParse(digits, out int octet) || octet > 255)
                return false;
            octets[part++] = (byte)octet;
        }
        if (part != 4) return false;
        address = new IPAddress(octets);
        return true;
    }

    public bool Contains(IPAddress? address)
    {
        if (AllowsAll) return true;
        if (address is null) return false;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        foreach (var network in _blocks)
            if (network.Contains(address)) return true;
        return false;
    }
}
