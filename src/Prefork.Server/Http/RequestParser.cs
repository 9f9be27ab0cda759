using System.Buffers;
using System.Text;

namespace Prefork.Http;

/// <summary>
/// Parses an HTTP/1.1 request head (RFC 9112 §3, §5) from a receive buffer. Strict on purpose:
/// anything whose meaning or framing is ambiguous is an <see cref="HttpError"/>, never guessed at,
/// so a message a proxy in front of us framed differently cannot be smuggled to the application.
/// </summary>
public static class RequestParser
{
    private static readonly SearchValues<byte> TokenChars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    // Common names and methods are shared strings, so parsing them allocates nothing.
    private static readonly string[] KnownMethods = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
    private static readonly string[] KnownHeaderNames =
    [
        "Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Connection", "Content-Length",
        "Content-Type", "Transfer-Encoding", "Cookie", "Referer", "Cache-Control", "Expect", "Origin",
        "Authorization", "Upgrade-Insecure-Requests", "If-None-Match", "If-Modified-Since", "X-Forwarded-For",
        "X-Forwarded-Proto", "Keep-Alive", "Pragma", "Range", "Forwarded",
    ];
    private static readonly byte[][] KnownMethodBytes = KnownMethods.Select(Encoding.ASCII.GetBytes).ToArray();
    private static readonly byte[][] KnownHeaderBytes = KnownHeaderNames.Select(Encoding.ASCII.GetBytes).ToArray();

    /// <summary>
    /// Parses the head at the start of <paramref name="buffer"/> into <paramref name="head"/>.
    /// Returns false when the head is not complete yet (read more and call again with the whole
    /// buffer); throws <see cref="HttpError"/> when it is invalid or over a limit.
    /// </summary>
    public static bool TryParseHead(ReadOnlySpan<byte> buffer, RequestHead head, HttpLimits limits, out int consumed)
    {
        consumed = 0;
        head.Reset();
        int pos = 0;
        // RFC 9112 §2.2: ignore at least one empty line before the request line (some clients send one after a POST body).
        while (buffer.Length - pos >= 2 && buffer[pos] == '\r' && buffer[pos + 1] == '\n') pos += 2;

        int lineLength = buffer[pos..].IndexOf((byte)'\n');
        if (lineLength < 0)
        {
            if (buffer.Length - pos > limits.RequestLine + 1) throw HttpError.LimitRequestLine(limits.RequestLine);
            return false;
        }
        var line = TrimCr(buffer.Slice(pos, lineLength), "request line");
        if (line.Length > limits.RequestLine) throw HttpError.LimitRequestLine(limits.RequestLine);
        ParseRequestLine(line, head);
        pos += lineLength + 1;

        int fields = 0;
        while (true)
        {
            lineLength = buffer[pos..].IndexOf((byte)'\n');
            if (lineLength < 0)
            {
                if (buffer.Length - pos > limits.FieldSize + 1) throw HttpError.LimitRequestFieldSize(limits.FieldSize);
                return false;
            }
            line = TrimCr(buffer.Slice(pos, lineLength), "header line");
            pos += lineLength + 1;
            if (line.IsEmpty) break;
            if (++fields > limits.Fields) throw HttpError.LimitRequestFields(limits.Fields);
            if (line.Length > limits.FieldSize) throw HttpError.LimitRequestFieldSize(limits.FieldSize);
            if (line[0] is (byte)' ' or (byte)'\t') throw HttpError.ObsoleteFolding();
            ParseHeaderLine(line, head);
        }
        DecideFraming(head);
        consumed = pos;
        return true;
    }

    private static ReadOnlySpan<byte> TrimCr(ReadOnlySpan<byte> line, string what)
    {
        // A bare LF is not a line ending here: RFC 9112 allows it, but proxies disagree on it.
        if (line.IsEmpty || line[^1] != '\r') throw HttpError.InvalidHeader($"{what} not terminated by CRLF");
        return line[..^1];
    }

    private static void ParseRequestLine(ReadOnlySpan<byte> line, RequestHead head)
    {
        int sp1 = line.IndexOf((byte)' ');
        if (sp1 <= 0) throw sp1 == 0 ? HttpError.InvalidRequestLine("starts with whitespace") : HttpError.InvalidRequestLine("no spaces");
        var method = line[..sp1];
        if (method.IndexOfAnyExcept(TokenChars) >= 0) throw HttpError.InvalidMethod("not a token");
        var rest = line[(sp1 + 1)..];
        int sp2 = rest.IndexOf((byte)' ');
        if (sp2 < 0) throw HttpError.InvalidRequestLine("expected METHOD SP TARGET SP VERSION");
        var target = rest[..sp2];
        var version = rest[(sp2 + 1)..];
        if (target.IsEmpty) throw HttpError.InvalidRequestLine("empty target (two spaces?)");
        foreach (var b in target)
            if (b <= 0x20 || b >= 0x7f) throw HttpError.InvalidTarget("control, space or non-ASCII byte");

        head.Method = Intern(method, KnownMethods, KnownMethodBytes) ?? Encoding.ASCII.GetString(method);
        head.VersionMinor = ParseVersion(version);
        head.Target = Encoding.ASCII.GetString(target);
        CheckTargetForm(head);
    }

    private static int ParseVersion(ReadOnlySpan<byte> v)
    {
        if (v.Length != 8 || !v.StartsWith("HTTP/"u8) || !char.IsAsciiDigit((char)v[5]) || v[6] != '.' || !char.IsAsciiDigit((char)v[7]))
            throw HttpError.InvalidVersion(v.Length > 16 ? "malformed" : $"'{Encoding.ASCII.GetString(v)}'");
        if (v[5] == '1' && v[7] is (byte)'0' or (byte)'1') return v[7] - '0';
        throw HttpError.UnsupportedVersion(Encoding.ASCII.GetString(v));
    }

    /// <summary>RFC 9112 §3.2: each form of request-target goes with its methods.</summary>
    private static void CheckTargetForm(RequestHead head)
    {
        var t = head.Target;
        if (t[0] == '/') return; // origin-form
        if (t == "*")
        {
            if (head.Method != "OPTIONS") throw HttpError.InvalidTarget("asterisk-form is only for OPTIONS");
            return;
        }
        if (head.Method == "CONNECT") return; // authority-form: host:port
        if (t.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || t.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            return; // absolute-form
        throw HttpError.InvalidTarget("expected /path, an absolute URI, or * with OPTIONS");
    }

    private static void ParseHeaderLine(ReadOnlySpan<byte> line, RequestHead head)
    {
        int colon = line.IndexOf((byte)':');
        if (colon < 0) throw HttpError.InvalidHeader("no colon");
        var name = line[..colon];
        if (name.IsEmpty) throw HttpError.InvalidHeaderName("empty");
        // Covers whitespace before the colon too (RFC 9112 §5.1: MUST reject).
        if (name.IndexOfAnyExcept(TokenChars) >= 0) throw HttpError.InvalidHeaderName("not a token");
        var value = line[(colon + 1)..].Trim(" \t"u8);
        foreach (var b in value)
            if ((b < 0x20 && b != '\t') || b == 0x7f) throw HttpError.InvalidHeader("control character in value");
        var nameText = Intern(name, KnownHeaderNames, KnownHeaderBytes) ?? Encoding.ASCII.GetString(name);
        head.Headers.Add(nameText, value.IsEmpty ? "" : Encoding.Latin1.GetString(value));
    }

    private static string? Intern(ReadOnlySpan<byte> text, string[] known, byte[][] knownBytes)
    {
        for (int i = 0; i < knownBytes.Length; i++)
            if (text.SequenceEqual(knownBytes[i])) return known[i];
        return null;
    }

    /// <summary>Content-Length, Transfer-Encoding, Host, Connection, Expect: RFC 9112 §6, §9.3, RFC 9110 §7.2.</summary>
    private static void DecideFraming(RequestHead head)
    {
        string? contentLength = null, transferEncoding = null, host = null;
        int hosts = 0;
        bool close = false, keepAlive = false;
        foreach (var (name, value) in head.Headers)
        {
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                if (contentLength is not null) throw HttpError.InvalidFraming("more than one Content-Length");
                contentLength = value;
            }
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                transferEncoding = transferEncoding is null ? value : transferEncoding + "," + value;
            else if (name.Equals("Host", StringComparison.OrdinalIgnoreCase)) { hosts++; host = value; }
            else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var token in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    if (token.Equals("close", StringComparison.OrdinalIgnoreCase)) close = true;
                    else if (token.Equals("keep-alive", StringComparison.OrdinalIgnoreCase)) keepAlive = true;
                }
            }
            else if (name.Equals("Expect", StringComparison.OrdinalIgnoreCase))
                head.ExpectContinue = value.Equals("100-continue", StringComparison.OrdinalIgnoreCase);
        }

        if (head.VersionMinor == 1 && hosts != 1)
            throw HttpError.InvalidHeader(hosts == 0 ? "HTTP/1.1 request without Host" : "more than one Host");
        if (hosts > 1) throw HttpError.InvalidHeader("more than one Host");
        if (host is not null && host.Length > 0 && host.AsSpan().IndexOfAny(" /?#@\\\t") >= 0)
            throw HttpError.InvalidHeader("Host is not a host[:port]");

        if (transferEncoding is not null)
        {
            if (contentLength is not null) throw HttpError.InvalidFraming("both Content-Length and Transfer-Encoding");
            if (head.VersionMinor == 0) throw HttpError.InvalidFraming("Transfer-Encoding in an HTTP/1.0 request");
            var codings = transferEncoding.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (codings.Length == 0) throw HttpError.InvalidFraming("empty Transfer-Encoding");
            if (!codings[^1].Equals("chunked", StringComparison.OrdinalIgnoreCase))
                throw HttpError.InvalidFraming("Transfer-Encoding does not end in chunked");
            if (codings.Length > 1)
                throw codings[..^1].Any(c => c.Equals("chunked", StringComparison.OrdinalIgnoreCase))
                    ? HttpError.InvalidFraming("chunked applied twice")
                    : HttpError.UnsupportedTransferCoding(string.Join(", ", codings[..^1]));
            head.Chunked = true;
        }
        else if (contentLength is not null)
        {
            if (contentLength.Length == 0 || contentLength.Length > 18 || !contentLength.All(char.IsAsciiDigit))
                throw HttpError.InvalidFraming($"Content-Length '{(contentLength.Length > 20 ? contentLength[..20] + "…" : contentLength)}' is not a number");
            head.ContentLength = long.Parse(contentLength);
        }

        head.KeepAlive = head.VersionMinor == 1 ? !close : keepAlive && !close;
        if (head.VersionMinor == 0) head.ExpectContinue = false;
    }
}
