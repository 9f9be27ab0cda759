using System.Net;
using System.Text;
using Prefork.Http;

namespace Prefork.Tests.Http;

/// <summary>ProxyProtocol.TryParse as a pure function: v1 text, v2 binary, need-more and refusals.</summary>
public sealed class ProxyProtocolTests
{
    private static ProxyHeaderStatus Parse(byte[] input, out ProxyHeader header, out int consumed) =>
        ProxyProtocol.TryParse(input, out header, out consumed, out _);

    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    [Theory]
    [InlineData("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /", "192.168.0.1", 56324, "192.168.0.11", 443)]
    [InlineData("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n", "2001:db8::1", 65535, "2001:db8::2", 0)]
    public void V1_gives_source_and_destination(string text, string source, int sourcePort, string destination, int destinationPort)
    {
        var input = Ascii(text);
        Assert.Equal(ProxyHeaderStatus.Parsed, Parse(input, out var header, out int consumed));
        Assert.Equal(new IPEndPoint(IPAddress.Parse(source), sourcePort), header.Source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse(destination), destinationPort), header.Destination);
        Assert.Equal(text.IndexOf("\r\n", StringComparison.Ordinal) + 2, consumed);
    }

    [Fact]
    public void V1_unknown_keeps_the_real_addresses()
    {
        Assert.Equal(ProxyHeaderStatus.Parsed, Parse(Ascii("PROXY UNKNOWN\r\n"), out var header, out int consumed));
        Assert.Null(header.Source);
        Assert.Equal(15, consumed);
        Assert.Equal(ProxyHeaderStatus.Parsed, Parse(Ascii("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), out header, out _));
        Assert.Null(header.Source);
    }

    [Theory]
    [InlineData("PROXY TCP4 192.168.0.1 192.16...\r\n")]           // Gunicorn's pp_01
    [InlineData("PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000\r\n")] // pp_02
    [InlineData("PROXY TCP4 not-an-ip 192.168.0.11 56324 443\r\n")] // pp_03
    [InlineData("PROXY TCP4 192.168.0.1 192.168.0.11 56324 65536\r\n")]
    [InlineData("PROXY TCP4 010.0.0.1 192.168.0.11 1 2\r\n")]      // no octal, no short forms
    [InlineData("PROXY TCP4 10.1 192.168.0.11 1 2\r\n")]
    [InlineData("PROXY TCP4 ::1 ::1 1 2\r\n")]                     // family mismatch
    [InlineData("PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n")]
    [InlineData("PROXY TCP4  192.168.0.1 192.168.0.11 1 2\r\n")]   // two spaces
    [InlineData("PROXY UDP4 192.168.0.1 192.168.0.11 1 2\r\n")]
    [InlineData("PROXY TCP4 192.168.0.1 192.168.0.11 1 2\n")]      // bare LF
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]               // no header at all
    public void V1_refuses_malformed_lines_and_missing_headers(string text) =>
        Assert.Equal(ProxyHeaderStatus.Invalid, Parse(Ascii(text), out _, out _));

    [Fact]
    public void V1_line_longer_than_107_bytes_is_refused()
    {
        var line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443" + new string(' ', 70);
        Assert.Equal(ProxyHeaderStatus.Invalid, Parse(Ascii(line), out _, out _));
        Assert.Equal(ProxyHeaderStatus.NeedMore, Parse(Ascii(line[..100]), out _, out _));
    }

    [Fact]
    public void Every_proper_prefix_needs_more_and_the_whole_parses()
    {
        foreach (var whole in new[] { Ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), V2(0x21, 0x11, V4Block()) })
        {
            for (int i = 0; i < whole.Length; i++)
                Assert.Equal(ProxyHeaderStatus.NeedMore, Parse(whole[..i], out _, out _));
            Assert.Equal(ProxyHeaderStatus.Parsed, Parse(whole, out _, out int consumed));
            Assert.Equal(whole.Length, consumed);
        }
    }

    private static byte[] V4Block() => [192, 168, 1, 10, 192, 168, 1, 1, 0x30, 0x39, 0x01, 0xbb];

    private static byte[] V2(byte versionCommand, byte family, byte[] block, byte[]? tlvs = null)
    {
        tlvs ??= [];
        int length = block.Length + tlvs.Length;
        return [.. "\r\n\r\n\0\r\nQUIT\n"u8.ToArray(), versionCommand, family, (byte)(length >> 8), (byte)length, .. block, .. tlvs];
    }

    [Fact]
    public void V2_ipv4_and_ipv6_give_addresses_and_skip_tlvs()
    {
        var v4 = V2(0x21, 0x11, V4Block(), tlvs: [0x01, 0x00, 0x02, (byte)'h', (byte)'2']); // an ALPN TLV
        Assert.Equal(ProxyHeaderStatus.Parsed, Parse([.. v4, .. "GET"u8.ToArray()], out var header, out int consumed));
        Assert.Equal(v4.Length, consumed);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("192.168.1.10"), 12345), header.Source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("192.168.1.1"), 443), header.Destination);

        var source = IPAddress.Parse("2001:db8::1").GetAddressBytes();
        var destination = IPAddress.Parse("2001:db8::2").GetAddressBytes();
        var v6 = V2(0x21, 0x21, [.. source, .. destination, 0xd4, 0x31, 0x00, 0x50]);
        Assert.Equal(ProxyHeaderStatus.Parsed, Parse(v6, out header, out _));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8::1"), 54321), header.Source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8::2"), 80), header.Destination);
    }

    [Fact]
    public void V2_local_and_unspec_keep_the_real_addresses()
    {
        Assert.Equal(ProxyHeaderStatus.Parsed, Parse(V2(0x20, 0x00, []), out var header, out int consumed));
        Assert.Null(header.Source);
        Assert.Equal(16, consumed);
        Assert.Equal(ProxyHeaderStatus.Parsed, Parse(V2(0x21, 0x00, []), out header, out _));
        Assert.Null(header.Source);
    }

    [Theory]
    [InlineData(0x11, 0x11)] // version 1
    [InlineData(0x22, 0x11)] // command 2
    [InlineData(0x21, 0x12)] // UDP
    [InlineData(0x21, 0x41)] // no such family
    public void V2_refuses_bad_version_command_or_family(int versionCommand, int family) =>
        Assert.Equal(ProxyHeaderStatus.Invalid, Parse(V2((byte)versionCommand, (byte)family, V4Block()), out _, out _));

    [Fact]
    public void V2_refuses_an_address_block_too_short_for_its_family() =>
        Assert.Equal(ProxyHeaderStatus.Invalid, Parse(V2(0x21, 0x21, V4Block()), out _, out _));
}
