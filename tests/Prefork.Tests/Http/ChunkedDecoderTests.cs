using System.Buffers;
using System.Text;
using Prefork.Http;

namespace Prefork.Tests.Http;

public sealed class ChunkedDecoderTests
{
    private static string Decode(string wire, bool byteByByte)
    {
        var decoder = new ChunkedDecoder(HttpLimits.Default);
        decoder.Reset();
        var body = new ArrayBufferWriter<byte>();
        var bytes = Encoding.Latin1.GetBytes(wire);
        int pos = 0;
        // Feed growing windows the way a connection does: unconsumed bytes stay in front.
        for (int end = byteByByte ? 1 : bytes.Length; ; end++)
        {
            pos += decoder.Decode(bytes.AsSpan(pos, end - pos), body); // takes all it can of what it is given
            if (decoder.IsComplete || end == bytes.Length) break;
        }
        Assert.True(decoder.IsComplete);
        return Encoding.Latin1.GetString(body.WrittenSpan);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Decodes_sizes_extensions_and_trailers_in_one_piece_or_byte_by_byte(bool byteByByte)
    {
        Assert.Equal("hello world", Decode("5\r\nhello\r\n6;a=b;c=\"q\\\"x\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", byteByByte));
        Assert.Equal("0123456789abcdef", Decode("010\r\n0123456789abcdef\r\n0\r\n\r\n", byteByByte));
    }

    [Theory]
    [InlineData("-5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("+5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5 x\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5\r\nhelloXX0\r\n\r\n")]
    [InlineData("5\nhello\r\n0\r\n\r\n")]
    [InlineData("ffffffffffffffff\r\n")]
    [InlineData("0\r\nContent-Length: 5\r\n\r\n")]
    public void Bad_chunks_are_400_class_errors(string wire)
    {
        var decoder = new ChunkedDecoder(HttpLimits.Default);
        decoder.Reset();
        var error = Assert.Throws<HttpError>(() => decoder.Decode(Encoding.Latin1.GetBytes(wire), new ArrayBufferWriter<byte>()));
        Assert.InRange(error.Status, 400, 499);
    }

    [Fact]
    public void A_body_over_the_limit_is_413()
    {
        var decoder = new ChunkedDecoder(new HttpLimits(4094, 100, 8190, 10));
        decoder.Reset();
        Assert.Equal(413, Assert.Throws<HttpError>(() => decoder.Decode("b\r\n"u8.ToArray(), new ArrayBufferWriter<byte>())).Status);
    }
}
