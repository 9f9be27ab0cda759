using System.Buffers;
using System.Buffers.Text;
using System.Text;
using Prefork.Gateway;

namespace Prefork.Http;

/// <summary>Where a connection's response bytes go: a blocking socket, or an event loop's output queue.</summary>
public interface IResponseTransport
{
    /// <summary>Sends (or queues) the bytes; throws <see cref="ConnectionLostException"/> when the client is gone.</summary>
    void Send(ReadOnlySpan<byte> bytes);

    /// <summary>True when so much output is queued that a streaming body should wait (non-blocking transports only).</summary>
    bool NeedsDrain => false;

    /// <summary>Completes when the queued output has gone out far enough to produce more.</summary>
    ValueTask DrainAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// Turns an application's status, headers and body into HTTP/1.1 bytes: chooses the framing
/// (Content-Length, chunked, or close-delimited), adds Date/Server/Connection, drops hop-by-hop
/// headers the application must not set, and batches small writes into one buffer so that a run
/// of pipelined responses leaves in one send.
/// </summary>
public sealed class ResponseWriter
{
    private const int FlushThreshold = 64 * 1024;
    private static readonly byte[] ServerLine = "Server: prefork\r\n"u8.ToArray();

    private IResponseTransport _transport;
    private byte[] _buffer = new byte[16 * 1024];
    // The last status line written: apps pass the same status string again and again.
    private string? _lastStatus;
    private byte[] _lastStatusLine = [];
    private int _length;

    private bool _chunked, _noBody;
    private long _declaredLength = -1;
    private int _responseStart; // where the current request's response begins in the buffer (BeginResponse)
    private bool _responsePartlySent; // some of it has left: it can no longer be taken back

    public ResponseWriter(IResponseTransport transport) => _transport = transport;

    /// <summary>Points the writer at another connection; nothing may be pending for the previous one.</summary>
    public void Attach(IResponseTransport transport)
    {
        _length = 0;
        _responseStart = 0;
        _transport = transport;
    }

    /// <summary>
    /// The connection hands the writer its next request: what is written from here on is that
    /// request's response, and only that can <see cref="TryDiscardResponse"/> take back (earlier
    /// pipelined responses still waiting in the buffer stay, and what went out for them does not count).
    /// </summary>
    public void BeginResponse()
    {
        _responseStart = _length;
        _responsePartlySent = false;
    }

    public bool NeedsDrain => _transport.NeedsDrain;
    public ValueTask DrainAsync() => _transport.DrainAsync();

    /// <summary>Body bytes sent for the current response (for the access log).</summary>
    public long BodyBytes { get; private set; }
    public int Status { get; private set; }
    /// <summary>True when the framing chosen lets the connection carry another request.</summary>
    public bool KeepAlive { get; private set; }
    public bool HeadSent { get; private set; }

    /// <summary>
    /// Writes the status line and headers. <paramref name="singleBodyLength"/> is the length of a
    /// body known up front (-1 when streamed).
    /// </summary>
    public void WriteHead(string status, IReadOnlyList<KeyValuePair<string, string>> headers, RequestHead request,
        bool keepAlive, long singleBodyLength)
    {
        Status = StatusLine.Code(status);
        BodyBytes = 0;
        _declaredLength = -1;
        _chunked = false;
        _noBody = request.Method == "HEAD" || Status is < 200 or 204 or 304;
        bool appWantsClose = false;

        if (!ReferenceEquals(status, _lastStatus))
        {
            _lastStatusLine = StatusLine.For(status);
            _lastStatus = status;
        }
        Append(_lastStatusLine);
        Append(DateHeader.Line);
        Append(ServerLine);
        for (int i = 0; i < headers.Count; i++)
        {
            var (name, value) = headers[i];
            CheckHeader(name, value);
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                if (!long.TryParse(value, out _declaredLength) || _declaredLength < 0)
                    throw new InvalidOperationException($"application set Content-Length '{value}'");
                continue; // written below, once
            }
            if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
            {
                appWantsClose |= value.Contains("close", StringComparison.OrdinalIgnoreCase);
                continue;
            }
            // Hop-by-hop: framing is the server's business (PEP 3333 forbids these from the app).
            if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) || name.Equals("Keep-Alive", StringComparison.OrdinalIgnoreCase))
                continue;
            AppendLatin1(name);
            Append(": "u8);
            AppendLatin1(value);
            Append("\r\n"u8);
        }

        if (_declaredLength < 0 && singleBodyLength >= 0) _declaredLength = singleBodyLength;
        bool bodyAllowed = Status is >= 200 and not 204 and not 304;
        KeepAlive = keepAlive && !appWantsClose;
        if (bodyAllowed && _declaredLength >= 0)
            AppendNumberHeader("Content-Length: "u8, _declaredLength);
        else if (bodyAllowed && request.VersionMinor == 1)
            _chunked = true;
        else if (bodyAllowed && request.Method != "HEAD")
            KeepAlive = false; // HTTP/1.0 and no length: the end of the body is the close
        if (_chunked) Append("Transfer-Encoding: chunked\r\n"u8);

        if (!KeepAlive) Append("Connection: close\r\n"u8);
        else if (request.VersionMinor == 0) Append("Connection: keep-alive\r\n"u8);
        Append("\r\n"u8);
        HeadSent = true;
    }

    /// <summary>Writes one piece of body, framed as chosen in <see cref="WriteHead"/>.</summary>
    public void WriteBody(ReadOnlySpan<byte> chunk)
    {
        if (_noBody || chunk.IsEmpty) return;
        if (_declaredLength >= 0 && BodyBytes + chunk.Length > _declaredLength)
        {
            // More than the app promised: send what was promised and end the connection.
            chunk = chunk[..(int)(_declaredLength - BodyBytes)];
            KeepAlive = false;
        }
        BodyBytes += chunk.Length;
        if (_chunked)
        {
            Span<byte> size = stackalloc byte[20];
            Utf8Formatter.TryFormat(chunk.Length, size, out int n, new StandardFormat('X'));
            Append(size[..n]);
            Append("\r\n"u8);
        }
        if (chunk.Length >= FlushThreshold)
        {
            Flush();
            _responsePartlySent = true;
            _transport.Send(chunk); // large bodies go straight out, uncopied
        }
        else Append(chunk);
        if (_chunked) Append("\r\n"u8);
    }

    /// <summary>Ends the body (the last chunk, or a check that the promised length was sent).</summary>
    public void EndBody()
    {
        if (_chunked && !_noBody) Append("0\r\n\r\n"u8);
        if (!_noBody && _declaredLength >= 0 && BodyBytes < _declaredLength) KeepAlive = false; // the app sent less than promised
        HeadSent = false;
    }

    /// <summary>Writes a complete error response from the server itself (400, 500…) with Connection: close.</summary>
    public void WriteError(int status, bool headRequest = false)
    {
        Append(ErrorResponse(status, headRequest, out int bodyLength));
        Status = status;
        BodyBytes = bodyLength;
        KeepAlive = false;
        HeadSent = false;
    }

    /// <summary>
    /// A complete response from the server itself ("400 Bad Request\n" as text/plain,
    /// Connection: close), for <see cref="WriteError"/> and for whoever must answer without a
    /// writer (a connection timing out in the middle of a request).
    /// </summary>
    public static byte[] ErrorResponse(int status, bool headRequest, out int bodyLength)
    {
        var reason = StatusLine.Reason(status);
        var body = $"{status} {reason}\n";
        bodyLength = headRequest ? 0 : body.Length;
        return Encoding.ASCII.GetBytes(
            $"HTTP/1.1 {status} {reason}\r\n{Encoding.ASCII.GetString(DateHeader.Line)}{Encoding.ASCII.GetString(ServerLine)}" +
            $"Content-Type: text/plain\r\nConnection: close\r\nContent-Length: {body.Length}\r\n\r\n{(headRequest ? "" : body)}");
    }

    public void WriteRaw(ReadOnlySpan<byte> bytes) => Append(bytes);

    /// <summary>
    /// Takes back the current response if none of it has left yet (so a failing app can get a 500
    /// instead); false when bytes are already on the wire and the connection must be dropped.
    /// </summary>
    public bool TryDiscardResponse()
    {
        if (_responsePartlySent) return false;
        _length = _responseStart;
        HeadSent = false;
        return true;
    }

    public void Flush()
    {
        if (_length == 0) return;
        _transport.Send(_buffer.AsSpan(0, _length));
        _length = 0;
        _responseStart = 0;
        _responsePartlySent = HeadSent;
    }

    /// <summary>Drops whatever was not sent yet (the connection is lost).</summary>
    public void Discard()
    {
        _length = 0;
        _responseStart = 0;
        HeadSent = false;
        KeepAlive = false;
    }

    private static void CheckHeader(string name, string value)
    {
        if (name.Length == 0 || name.AsSpan().IndexOfAny(":\r\n \t") >= 0 || value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
            throw new InvalidOperationException($"application set an invalid header '{name}' (CR, LF, NUL or colon)");
    }

    private void AppendNumberHeader(ReadOnlySpan<byte> prefix, long value)
    {
        Append(prefix);
        Span<byte> digits = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, digits, out int n);
        Append(digits[..n]);
        Append("\r\n"u8);
    }

    private void AppendLatin1(string text)
    {
        Ensure(text.Length);
        _length += Encoding.Latin1.GetBytes(text, _buffer.AsSpan(_length));
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (_length + bytes.Length > FlushThreshold && _length > 0) Flush();
        Ensure(bytes.Length);
        bytes.CopyTo(_buffer.AsSpan(_length));
        _length += bytes.Length;
    }

    private void Ensure(int more)
    {
        if (_length + more <= _buffer.Length) return;
        Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + more));
    }
}
