using System.Buffers;
using System.Text;
using Prefork.Gateway;

namespace Prefork.Http;

/// <summary>
/// Decodes a chunked request body (RFC 9112 §7.1) incrementally: feed it whatever bytes have
/// arrived, it consumes what it can and appends the data to the body. Extensions are checked and
/// ignored; trailer fields are kept, except those that must never be trailers.
/// </summary>
public sealed class ChunkedDecoder
{
    private enum State { Size, Data, DataEnd, Trailer, Done }

    private const int MaxSizeLine = 4096;
    // RFC 9110 §6.5.1: framing, routing, authentication and request modifiers never come in trailers.
    // (Content-Type is allowed, as Gunicorn allows it: we keep trailers apart from the headers anyway.)
    private static readonly string[] ForbiddenTrailers =
        ["Content-Length", "Transfer-Encoding", "Host", "Content-Encoding", "Content-Range", "Trailer",
         "Authorization", "Cache-Control", "Expect", "Max-Forwards", "Pragma", "Range", "TE", "Set-Cookie", "Cookie"];

    private State _state;
    private long _remaining;
    private long _total;
    private int _trailerFields;
    private readonly HttpLimits _limits;

    public ChunkedDecoder(HttpLimits limits) => _limits = limits;

    public bool IsComplete => _state == State.Done;
    public RequestHeaders Trailers { get; } = new();

    public void Reset()
    {
        _state = State.Size;
        _remaining = _total = 0;
        _trailerFields = 0;
        Trailers.Clear();
    }

    /// <summary>Consumes from <paramref name="input"/>, appending body bytes to <paramref name="body"/>; returns bytes consumed.</summary>
    public int Decode(ReadOnlySpan<byte> input, IBufferWriter<byte> body)
    {
        int pos = 0;
        while (pos < input.Length && _state != State.Done)
        {
            var rest = input[pos..];
            switch (_state)
            {
                case State.Data:
                {
                    int n = (int)Math.Min(rest.Length, _remaining);
                    body.Write(rest[..n]);
                    pos += n;
                    _remaining -= n;
                    if (_remaining == 0) _state = State.DataEnd;
                    break;
                }
                case State.DataEnd:
                    if (rest.Length < 2) return pos;
                    if (rest[0] != '\r' || rest[1] != '\n') throw HttpError.InvalidChunk("chunk data not followed by CRLF");
                    pos += 2;
                    _state = State.Size;
                    break;
                case State.Size:
                case State.Trailer:
                {
                    // A line counts with its CRLF (as a header field does), whether it arrived whole or in pieces.
                    int lf = rest.IndexOf((byte)'\n');
                    int max = _state == State.Size ? MaxSizeLine : _limits.FieldSize;
                    if (lf < 0 ? rest.Length >= max : lf + 1 > max)
                        throw _state == State.Size ? HttpError.InvalidChunk("chunk size line too long") : HttpError.LimitRequestFieldSize(max);
                    if (lf < 0) return pos;
                    if (lf == 0 || rest[lf - 1] != '\r') throw HttpError.InvalidChunk("line not terminated by CRLF");
                    var line = rest[..(lf - 1)];
                    pos += lf + 1;
                    if (_state == State.Size) OnSizeLine(line);
                    else OnTrailerLine(line);
                    break;
                }
            }
        }
        return pos;
    }

    private void OnSizeLine(ReadOnlySpan<byte> line)
    {
        int digits = 0;
        long size = 0;
        while (digits < line.Length && char.IsAsciiHexDigit((char)line[digits]))
        {
            if (digits == 15) throw HttpError.InvalidChunk("chunk size too large");
            size = size * 16 + HexValue(line[digits]);
            digits++;
        }
        if (digits == 0) throw HttpError.InvalidChunk("chunk size is not hexadecimal");
        CheckExtensions(line[digits..]);
        _total += size;
        if (_total > _limits.Body) throw HttpError.LimitRequestBody(_limits.Body);
        _remaining = size;
        _state = size == 0 ? State.Trailer : State.Data;
    }

    private static int HexValue(byte b) => b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;

    /// <summary>
    /// chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ). Whitespace is only
    /// allowed before a ';' or around '=': "0 \r\n" is as invalid as " 0\r\n" (Gunicorn agrees).
    /// </summary>
    private static void CheckExtensions(ReadOnlySpan<byte> ext)
    {
        while (!ext.IsEmpty)
        {
            var semicolon = ext.TrimStart(" \t"u8);
            if (semicolon.IsEmpty) throw HttpError.InvalidChunk("whitespace after the chunk size without an extension");
            if (semicolon[0] != ';') throw HttpError.InvalidChunk("junk after chunk size");
            ext = semicolon[1..].TrimStart(" \t"u8);
            int nameLength = ext.IndexOfAnyExcept(RequestParser.TokenChars);
            if (nameLength < 0) nameLength = ext.Length;
            if (nameLength == 0) throw HttpError.InvalidChunk("empty chunk extension name");
            ext = ext[nameLength..];
            var equals = ext.TrimStart(" \t"u8);
            if (equals.IsEmpty || equals[0] != '=') continue;
            ext = equals[1..].TrimStart(" \t"u8);
            if (!ext.IsEmpty && ext[0] == '"')
            {
                int i = 1;
                for (; i < ext.Length && ext[i] != '"'; i++)
                {
                    if (ext[i] == '\\') i++;
                    else if (ext[i] < 0x20 && ext[i] != '\t' || ext[i] == 0x7f) throw HttpError.InvalidChunk("control character in chunk extension");
                }
                if (i >= ext.Length) throw HttpError.InvalidChunk("unterminated quoted chunk extension");
                ext = ext[(i + 1)..];
            }
            else
            {
                int valueLength = ext.IndexOfAnyExcept(RequestParser.TokenChars);
                if (valueLength == 0 || ext.IsEmpty) throw HttpError.InvalidChunk("empty chunk extension value");
                ext = valueLength < 0 ? default : ext[valueLength..];
            }
        }
    }

    private void OnTrailerLine(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty) { _state = State.Done; return; }
        if (++_trailerFields > _limits.Fields) throw HttpError.LimitRequestFields(_limits.Fields);
        RequestParser.SplitFieldLine(line, out var nameBytes, out var value);
        var name = Encoding.ASCII.GetString(nameBytes);
        foreach (var forbidden in ForbiddenTrailers)
            if (forbidden.Equals(name, StringComparison.OrdinalIgnoreCase)) throw HttpError.ForbiddenTrailer(name);
        Trailers.Add(name, Encoding.Latin1.GetString(value));
    }
}
