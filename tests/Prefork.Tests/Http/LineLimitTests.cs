using Prefork.Config;
using Prefork.Tests.Conformance;

namespace Prefork.Tests.Http;

/// <summary>
/// A line over its limit is refused with the same error whether it arrives whole or in pieces
/// (both orders were once different: found by the fuzz test).
/// </summary>
public sealed class LineLimitTests
{
    [Theory]
    // A trailer line longer than limit_request_field_size: whole, it used to be accepted.
    [InlineData("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: {0}\r\n\r\n", "LimitRequestFieldSize")]
    // A request line over limit_request_line that also ends in a bare LF: whole, it used to be "not CRLF".
    [InlineData("GET /{0} HTTP/1.1\n\r\n", "LimitRequestLine")]
    // A field line over the limit that is also one field too many: whole, it used to be "too many fields".
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: {0}\r\n\r\n", "LimitRequestFieldSize")]
    public void Whole_or_in_pieces_the_same_error(string template, string error)
    {
        var config = ConfigLoader.Parse("limit_request_fields = 2", null);
        var bytes = System.Text.Encoding.ASCII.GetBytes(template.Replace("{0}", new string('a', 9000)));
        Assert.Equal(error, ParserReplay.Run(bytes, config, byteByByte: false).Error);
        Assert.Equal(error, ParserReplay.Run(bytes, config, () => 1000).Error);
        Assert.Equal(error, ParserReplay.Run(bytes, config, () => 7).Error);
    }
}
