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
    /// <summary>RFC 9110 §5.6.2 tchar: what field names, methods and chunk extensions are made of.</summary>
    internal static readonly SearchValues<byte> TokenChars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    internal static readonly SearchValues<char> Digits = SearchValues.Create("0123456789");

    /// <summary>
    /// What a request-target may hold: visible ASCII (RFC 9112 §3.2, RFC 3986 §2; a client
    /// percent-encodes anything else), except '#': a fragment is never sent (RFC 3986 §3.5).
    /// </summary>
    private static readonly SearchValues<byte> TargetChars =
        SearchValues.Create(Enumerable.Range(0x21, 0x7e - 0x21 + 1).Where(b => b != '#').Select(b => (byte)b).ToArray());

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

    // Gunicorn's conventional-method rule (RFC 9110 only asks for a token): upper case, 3 to 20
    // characters, no '#'. Lower-case "methods" are almost always garbage or a probe, never a real client.
    // The longest registered method (UPDATEREDIRECTREF, RFC 5842) has 17: a longer one is one we
    // do not implement, so 501 (RFC 9112 §3), even when the line is also over limit_request_line.
    private const int MinMethodLength = 3, MaxMethodLength = 20;
    // RFC 9112 §2.2 asks us to skip "at least one" empty line before a request line; a few is generous,
    // and a bound keeps a stream of CRLFs from being re-scanned forever.
    private const int MaxEmptyLinesBeforeRequest = 4;

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
        for (int empty = 0; buffer.Length - pos >= 2 && buffer[pos] == '\r' && buffer[pos + 1] == '\n'; empty++, pos += 2)
            if (empty == MaxEmptyLinesBeforeRequest) throw HttpError.InvalidRequestLine("too many empty lines before the request line");

        int lineLength = buffer[pos..].IndexOf((byte)'\n');
        if (lineLength < 0)
        {
            if (buffer.Length - pos > limits.RequestLine + 1) throw LineTooLong(buffer.Slice(pos, limits.RequestLine + 1), limits);
            return false;
        }
        // Limits are checked before anything else on a line, so that a line decides the same
        // whether it arrived whole or in pieces (the partial checks above and below).
        if (lineLength > limits.RequestLine + 1) throw LineTooLong(buffer.Slice(pos, limits.RequestLine + 1), limits);
        var line = buffer.Slice(pos, lineLength);
        // A bare LF is not a line ending here: RFC 9112 §2.2 allows it, but proxies disagree on it.
        if (line.IsEmpty || line[^1] != '\r') throw HttpError.InvalidRequestLine("not terminated by CRLF");
        line = line[..^1];
        if (line.Length > limits.RequestLine) throw LineTooLong(line, limits);
        ParseRequestLine(line, head);
        pos += lineLength + 1;

        int fields = 0;
        while (true)
        {
            // limit_request_field_size counts the whole field line with its CRLF, as Gunicorn does.
            lineLength = buffer[pos..].IndexOf((byte)'\n');
            if (lineLength < 0)
            {
                if (buffer.Length - pos >= limits.FieldSize) throw HttpError.LimitRequestFieldSize(limits.FieldSize);
                return false;
            }
            if (lineLength + 1 > limits.FieldSize) throw HttpError.LimitRequestFieldSize(limits.FieldSize); // CR, LF included
            line = buffer.Slice(pos, lineLength);
            if (line.IsEmpty || line[^1] != '\r') throw HttpError.InvalidHeader("field line not terminated by CRLF (bare LF)");
            line = line[..^1];
            pos += lineLength + 1;
            if (line.IsEmpty) break;
            if (++fields > limits.Fields) throw HttpError.LimitRequestFields(limits.Fields);
            ParseHeaderLine(line, head);
        }
        DecideFraming(head);
        consumed = pos;
        return true;
    }

    /// <summary>
    /// A request line over limit_request_line is 414, unless what it starts with is already a
    /// method too long to be one (all token, no space within the first MaxMethodLength + 1 bytes):
    /// then 501, as <see cref="CheckMethod"/> says for a line within the limit. Only the first
    /// RequestLine + 1 bytes are looked at, which have arrived whether the line came whole or in pieces.
    /// </summary>
    private static HttpError LineTooLong(ReadOnlySpan<byte> lineStart, HttpLimits limits) =>
        lineStart.Length > MaxMethodLength && lineStart[..(MaxMethodLength + 1)].IndexOfAnyExcept(TokenChars) < 0
            ? HttpError.MethodTooLong(MaxMethodLength)
            : HttpError.LimitRequestLine(limits.RequestLine);

    private static void ParseRequestLine(ReadOnlySpan<byte> line, RequestHead head)
    {
        int sp1 = line.IndexOf((byte)' ');
        if (sp1 <= 0) throw sp1 == 0 ? HttpError.InvalidRequestLine("starts with whitespace") : HttpError.InvalidRequestLine("no spaces");
        var method = line[..sp1];
        CheckMethod(method);
        var rest = line[(sp1 + 1)..];
        int sp2 = rest.IndexOf((byte)' ');
        if (sp2 < 0) throw HttpError.InvalidRequestLine("expected METHOD SP TARGET SP VERSION");
        var target = rest[..sp2];
        var version = rest[(sp2 + 1)..];
        if (target.IsEmpty) throw HttpError.InvalidRequestLine("empty target (two spaces?)");
        // One vectorised pass. Gunicorn lets raw bytes above 0x7f and '#' through; we do not (DEVIATIONS.md).
        int bad = target.IndexOfAnyExcept(TargetChars);
        if (bad >= 0)
            throw HttpError.InvalidTarget(target[bad] == '#' ? "'#' (a fragment is never sent)"
                : target[bad] > 0x7f ? "a byte above 0x7f (not percent-encoded)" : "a control character");

        head.Method = Intern(method, KnownMethods, KnownMethodBytes) ?? Encoding.ASCII.GetString(method);
        head.VersionMinor = ParseVersion(version);
        head.Target = head.Strings.Get(target);
        CheckTargetForm(head);
    }

    private static void CheckMethod(ReadOnlySpan<byte> method)
    {
        if (method.IndexOfAnyExcept(TokenChars) >= 0) throw HttpError.InvalidMethod("not a token");
        if (method.Length > MaxMethodLength) throw HttpError.MethodTooLong(MaxMethodLength);
        if (method.Length < MinMethodLength) throw HttpError.InvalidMethod($"shorter than {MinMethodLength} characters");
        foreach (var b in method)
            if (b is >= (byte)'a' and <= (byte)'z' or (byte)'#') throw HttpError.InvalidMethod("lower case or '#'");
    }

    /// <summary>HTTP/1.0 → 0, HTTP/1.1 → 1. A later 1.x is served as 1.1 (RFC 9110 §2.5); other majors get 505.</summary>
    private static int ParseVersion(ReadOnlySpan<byte> v)
    {
        if (v.Length != 8 || !v.StartsWith("HTTP/"u8) || !char.IsAsciiDigit((char)v[5]) || v[6] != '.' || !char.IsAsciiDigit((char)v[7]))
            throw HttpError.InvalidVersion(v.Length > 16 ? "malformed" : $"'{Encoding.Latin1.GetString(v)}'");
        if (v[5] == '1') return v[7] == '0' ? 0 : 1;
        throw HttpError.UnsupportedVersion(Encoding.ASCII.GetString(v));
    }

    /// <summary>RFC 9112 §3.2: each form of request-target goes with its methods.</summary>
    private static void CheckTargetForm(RequestHead head)
    {
        // CONNECT asks for a tunnel (RFC 9110 §9.3.6), which only a proxy makes; Prefork is an origin
        // server and never hands the app a connection to tunnel. 501, not 405: 405 says the target
        // resource refuses a method it knows and must list the methods it allows (RFC 9110 §15.5.6),
        // which only the app knows; 501 says the server supports CONNECT for no resource at all (§15.6.2).
        if (head.Method == "CONNECT") throw HttpError.ConnectNotSupported();
        var t = head.Target.AsSpan();
        if (t[0] == '/') return; // origin-form
        if (t is "*")
        {
            // OPTIONS * asks about the server as a whole (§3.2.4); it goes to the app with PathInfo "*", as in Gunicorn.
            if (head.Method != "OPTIONS") throw HttpError.InvalidTarget("asterisk-form is only for OPTIONS");
            return;
        }
        // authority-form (host:port) is CONNECT's alone (§3.2.3): on any other method it is refused here.
        int schemeEnd = t.StartsWith("http://", StringComparison.OrdinalIgnoreCase) ? 7
            : t.StartsWith("https://", StringComparison.OrdinalIgnoreCase) ? 8 : -1;
        if (schemeEnd < 0) throw HttpError.InvalidTarget("expected /path, an http(s) absolute URI, or * with OPTIONS");
        var afterScheme = t[schemeEnd..];
        int authorityEnd = afterScheme.IndexOfAny('/', '?');
        var authority = authorityEnd < 0 ? afterScheme : afterScheme[..authorityEnd];
        // RFC 9110 §4.2.4: userinfo in an http(s) URI is treated as an error; it serves to disguise the host.
        if (authority.Contains('@')) throw HttpError.InvalidTarget("userinfo (user@) in an absolute URI");
        if (authority.IsEmpty || !IsAuthority(authority)) throw HttpError.InvalidTarget("invalid authority in an absolute URI");
    }

    /// <summary>
    /// RFC 3986 host [":" port]: an IP literal in brackets, or reg-name characters (unreserved,
    /// %-escapes, sub-delims), optionally followed by a port. Used for Host and the request-target.
    /// </summary>
    internal static bool IsAuthority(ReadOnlySpan<char> text)
    {
        ReadOnlySpan<char> port;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']');
            if (close < 3) return false;
            foreach (var c in text[1..close])
                if (!char.IsAsciiHexDigit(c) && c is not ':' and not '.') return false;
            port = text[(close + 1)..];
            if (!port.IsEmpty && port[0] != ':') return false;
        }
        else
        {
            int colon = text.IndexOf(':');
            var host = colon < 0 ? text : text[..colon];
            foreach (var c in host)
                if (!char.IsAsciiLetterOrDigit(c) && "-._~%!$&'()*+,;=".IndexOf(c) < 0) return false;
            port = colon < 0 ? default : text[colon..];
        }
        if (port.IsEmpty) return true;
        port = port[1..];
        foreach (var c in port)
            if (!char.IsAsciiDigit(c)) return false;
        return port.Length <= 5;
    }

    /// <summary>
    /// One non-empty field line (RFC 9112 §5), of the head or of a chunked body's trailer section:
    /// its name and its value without surrounding whitespace. Throws when it is folded or malformed.
    /// </summary>
    internal static void SplitFieldLine(ReadOnlySpan<byte> line, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        if (line[0] is (byte)' ' or (byte)'\t') throw HttpError.ObsoleteFolding();
        int colon = line.IndexOf((byte)':');
        if (colon < 0) throw HttpError.InvalidHeader("no colon");
        name = line[..colon];
        if (name.IsEmpty) throw HttpError.InvalidHeaderName("empty");
        // Covers whitespace before the colon too (RFC 9112 §5.1: MUST reject).
        if (name.IndexOfAnyExcept(TokenChars) >= 0) throw HttpError.InvalidHeaderName("not a token");
        value = line[(colon + 1)..].Trim(" \t"u8);
        foreach (var b in value)
            if ((b < 0x20 && b != '\t') || b == 0x7f) throw HttpError.InvalidHeader("control character in value");
    }

    private static void ParseHeaderLine(ReadOnlySpan<byte> line, RequestHead head)
    {
        SplitFieldLine(line, out var name, out var value);
        // Gunicorn's header_map = "drop": CGI-style names map '-' and '_' alike (HTTP_X_Y), so a field
        // named with '_' could pose as another one (Content_Length for Content-Length). It is dropped.
        if (name.Contains((byte)'_')) return;
        var nameText = Intern(name, KnownHeaderNames, KnownHeaderBytes) ?? head.Strings.Get(name);
        head.Headers.Add(nameText, head.Strings.Get(value));
    }

    private static string? Intern(ReadOnlySpan<byte> text, string[] known, byte[][] knownBytes)
    {
        for (int i = 0; i < knownBytes.Length; i++)
            if (text.SequenceEqual(knownBytes[i])) return known[i];
        return null;
    }

    /// <summary>Content-Length, Transfer-Encoding, Host, Connection, Expect: RFC 9112 §6, §9.3, RFC 9110 §7.2, §10.1.1.</summary>
    private static void DecideFraming(RequestHead head)
    {
        string? contentLength = null, transferEncoding = null, host = null, expect = null;
        int hosts = 0, contentTypes = 0;
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
            else if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)) contentTypes++;
            else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
            {
                close |= HasToken(value, "close");
                keepAlive |= HasToken(value, "keep-alive");
            }
            else if (name.Equals("Expect", StringComparison.OrdinalIgnoreCase))
                expect = expect is null ? value : expect + "," + value;
        }

        if (hosts > 1) throw HttpError.InvalidHeader("more than one Host");
        if (head.VersionMinor == 1 && hosts == 0) throw HttpError.MissingHost();
        if (host is { Length: > 0 } && !IsAuthority(host)) throw HttpError.InvalidHeader("Host is not host[:port]");
        // An empty Host says the target URI has no authority (RFC 9112 §3.2), but an http(s) URI
        // needs one, and only an absolute-form target carries its own: otherwise "the server can
        // reject the request" (§3.3), and we do rather than guess a server name for the app.
        if (host is "" && head.Target[0] is '/' or '*') throw HttpError.InvalidHeader("empty Host");
        head.Host = host;
        // A singleton field sent twice: which one the application would read is a guess.
        if (contentTypes > 1) throw HttpError.InvalidHeader("more than one Content-Type");

        if (transferEncoding is not null)
        {
            // RFC 9112 §6.1, §6.3: with both, the length cannot be trusted (the classic smuggling pair).
            if (contentLength is not null) throw HttpError.InvalidFraming("both Content-Length and Transfer-Encoding");
            if (head.VersionMinor == 0) throw HttpError.InvalidFraming("Transfer-Encoding in an HTTP/1.0 request");
            CheckTransferCodings(transferEncoding);
            head.Chunked = true;
        }
        else if (contentLength is not null)
        {
            // IndexOfAnyExcept(Digits), not IndexOfAnyExceptInRange('0', '9'): on .NET 10 the latter allocated 96 bytes a call.
            if (contentLength.Length is 0 or > 18 || contentLength.AsSpan().IndexOfAnyExcept(Digits) >= 0)
                throw HttpError.InvalidFraming($"Content-Length '{(contentLength.Length > 20 ? contentLength[..20] + "…" : contentLength)}' is not a number");
            head.ContentLength = long.Parse(contentLength);
        }

        head.KeepAlive = head.VersionMinor == 1 ? !close : keepAlive && !close;
        // RFC 9110 §10.1.1: an HTTP/1.0 client knows no expectations, so they are ignored there.
        if (expect is not null && head.VersionMinor == 1) head.ExpectContinue = ExpectsContinue(expect);
    }

    /// <summary>
    /// Whether the Expect list holds 100-continue. It is the only expectation there is (RFC 9110
    /// §10.1.1); any other member (100-continue with parameters too) cannot be met: 417.
    /// </summary>
    private static bool ExpectsContinue(string expect)
    {
        bool any = false;
        foreach (var member in new ListMembers(expect))
        {
            if (!member.Equals("100-continue", StringComparison.OrdinalIgnoreCase))
                throw HttpError.ExpectationFailed(member.Length > 40 ? member[..40].ToString() + "…" : member.ToString());
            any = true;
        }
        return any;
    }

    /// <summary>
    /// RFC 9112 §6.3: chunked must be the final coding, exactly once. We decode no other coding, so
    /// anything before chunked (gzip, identity…) is 501 rather than a body the app would misread.
    /// </summary>
    private static void CheckTransferCodings(string transferEncoding)
    {
        int codings = 0;
        bool lastIsChunked = false, chunkedEarlier = false;
        string? unsupported = null;
        foreach (var coding in new ListMembers(transferEncoding))
        {
            codings++;
            chunkedEarlier |= lastIsChunked;
            lastIsChunked = coding.Equals("chunked", StringComparison.OrdinalIgnoreCase);
            if (!lastIsChunked) unsupported ??= coding.ToString();
        }
        if (codings == 0) throw HttpError.InvalidFraming("empty Transfer-Encoding");
        if (!lastIsChunked) throw HttpError.InvalidFraming("Transfer-Encoding does not end in chunked");
        if (chunkedEarlier) throw HttpError.InvalidFraming("chunked applied twice");
        if (unsupported is not null) throw HttpError.UnsupportedTransferCoding(unsupported);
    }

    /// <summary>Whether a comma-separated list (Connection) holds <paramref name="token"/>, case-insensitively.</summary>
    private static bool HasToken(string list, string token)
    {
        foreach (var member in new ListMembers(list))
            if (member.Equals(token, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }

    /// <summary>
    /// The members of a comma-separated field value, trimmed, for foreach. Empty members are
    /// skipped: the list syntax allows them (RFC 9110 §5.6.1).
    /// </summary>
    private ref struct ListMembers
    {
        private ReadOnlySpan<char> _rest;

        public ListMembers(string list) => _rest = list;

        public ReadOnlySpan<char> Current { get; private set; }

        public readonly ListMembers GetEnumerator() => this;

        public bool MoveNext()
        {
            while (!_rest.IsEmpty)
            {
                int comma = _rest.IndexOf(',');
                Current = (comma < 0 ? _rest : _rest[..comma]).Trim(" \t");
                _rest = comma < 0 ? default : _rest[(comma + 1)..];
                if (!Current.IsEmpty) return true;
            }
            return false;
        }
    }
}
