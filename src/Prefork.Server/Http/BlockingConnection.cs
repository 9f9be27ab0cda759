using System.Buffers;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Prefork.Worker;
using Serilog;

namespace Prefork.Http;

/// <summary>
/// Serves one connection with blocking reads and writes (the sync and threads worker classes):
/// read a head, read its body, call the app, write the response; repeat while keep-alive holds.
/// Pipelined requests already in the buffer are answered before the responses are flushed, so
/// they leave in one write. One instance is reused for every connection its thread serves.
/// </summary>
public sealed class BlockingConnection : IResponseTransport
{
    private readonly WorkerContext _worker;
    private readonly RequestProcessor _processor;
    private readonly ResponseWriter _writer;
    private readonly RequestHead _head = new();
    private readonly ChunkedDecoder _chunked;
    private readonly ArrayBufferWriter<byte> _body = new(4096);
    private readonly ConnectionInfo _info = new();
    private readonly RequestSlot _slot;
    private readonly IpAllowList? _proxyAllowList; // set when proxy_protocol is on
    private byte[] _buffer = new byte[16 * 1024];
    private int _start, _end; // unparsed bytes are _buffer[_start.._end]
    private Socket _socket = null!;

    public BlockingConnection(WorkerContext worker)
    {
        _worker = worker;
        _processor = new RequestProcessor(worker);
        _writer = new ResponseWriter(this);
        _chunked = new ChunkedDecoder(worker.Limits);
        _slot = worker.NewSlot();
        if (worker.Config.ProxyProtocol) _proxyAllowList = IpAllowList.Parse(worker.Config.ProxyAllowIps);
    }

    /// <param name="mayKeepAlive">Asked after each response: false when others are waiting for this thread.</param>
    public void Serve(Socket socket, Func<bool> mayKeepAlive)
    {
        _socket = socket;
        _start = _end = 0;
        try
        {
            _info.Set(socket.RemoteEndPoint, socket.LocalEndPoint);
            if (_proxyAllowList is not null && !ReadProxyHeader()) return;
            bool keepAlive = true;
            bool first = true;
            while (keepAlive)
            {
                if (!ReadHead(first)) break;
                first = false;
                ReadBody();
                bool allowKeepAlive = _worker.Config.Keepalive > 0 && !_worker.IsStopping && mayKeepAlive();
                keepAlive = _processor.Process(_head, BodyStream(), _body.WrittenCount, _info, _writer, allowKeepAlive, _slot,
                    _head.Chunked ? _chunked.Trailers : null);
                // Answer every pipelined request already received before one flush.
                if (!keepAlive || !HeadIsBuffered()) _writer.Flush();
            }
            _writer.Flush();
        }
        catch (HttpError e)
        {
            Log.Debug("Bad request from {Remote}: {Error}", _info.RemoteAddr, e.Message);
            TrySendError(e.Status);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            Log.Debug("Connection from {Remote} ended: {Error}", _info.RemoteAddr, e.Message);
        }
        catch (Exception e)
        {
            // A bug of ours must cost one connection, not the worker.
            Log.Error(e, "Unexpected error serving {Remote}; closing the connection", _info.RemoteAddr);
        }
        finally
        {
            CloseGracefully(socket);
        }
    }

    /// <summary>
    /// Reads the PROXY protocol header that must open the connection and takes the client's
    /// addresses from it. False when the peer closed without sending anything (a health check).
    /// </summary>
    private bool ReadProxyHeader()
    {
        if (!_info.IsUnixSocket && !_proxyAllowList!.Contains(_info.RemoteIp)) throw HttpError.ForbiddenProxy(_info.RemoteAddr);
        _socket.ReceiveTimeout = Math.Max(1, _worker.Config.Timeout) * 1000;
        while (true)
        {
            var status = ProxyProtocol.TryParse(_buffer.AsSpan(_start, _end - _start), out var header, out int consumed, out var error);
            if (status == ProxyHeaderStatus.Parsed)
            {
                _start += consumed;
                _info.Apply(header);
                return true;
            }
            if (status == ProxyHeaderStatus.Invalid) throw HttpError.InvalidProxyHeader(error);
            if (Receive() == 0)
            {
                if (_end == _start) return false;
                throw HttpError.InvalidProxyHeader("connection closed in the middle of the header");
            }
        }
    }

    /// <summary>Reads until a whole head is parsed. False when the client went away (or idled out) between requests.</summary>
    private bool ReadHead(bool first)
    {
        // Between requests wait `keepalive` seconds; once a request has begun, `timeout`.
        int idleMs = first ? Math.Max(1, _worker.Config.Timeout) * 1000 : _worker.Config.Keepalive * 1000;
        int busyMs = Math.Max(1, _worker.Config.Timeout) * 1000;
        var limits = _worker.Limits;
        // The parser starts over from the head's first byte each time, so it runs only when a line
        // was completed or the line still arriving is already over its limit: parsing every packet
        // of a head sent a byte at a time would cost time quadratic in its length.
        int lineStart = _buffer.AsSpan(_start, _end - _start).LastIndexOf((byte)'\n') + 1; // from _start
        bool parse = true;
        while (true)
        {
            if (parse && _end > _start && RequestParser.TryParseHead(_buffer.AsSpan(_start, _end - _start), _head, limits, out int consumed))
            {
                _start += consumed;
                return true;
            }
            if (_end - _start >= limits.MaxHeadBytes) throw HttpError.LimitRequestFieldSize(limits.FieldSize);
            _socket.ReceiveTimeout = _end > _start ? busyMs : idleMs;
            int n;
            try { n = Receive(); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                if (_end == _start) return false; // idle keep-alive connection: just close
                throw HttpError.Timeout();
            }
            if (n == 0)
            {
                if (_end == _start) return false;
                throw HttpError.InvalidRequestLine("connection closed in the middle of the request head");
            }
            int newLine = _buffer.AsSpan(_end - n, n).LastIndexOf((byte)'\n');
            if (newLine >= 0) lineStart = _end - n + newLine + 1 - _start;
            int lineLimit = lineStart == 0 ? limits.RequestLine + 1 : limits.FieldSize - 1; // where the parser gives up on a partial line
            parse = newLine >= 0 || _end - _start - lineStart > lineLimit;
        }
    }

    private void ReadBody()
    {
        _body.ResetWrittenCount();
        if (_head.ContentLength > _worker.Limits.Body) throw HttpError.LimitRequestBody(_worker.Limits.Body);
        // RFC 9110 §10.1.1: ask for the body only once we know we will read it, and not if it is already arriving.
        if (_head.HasBody && _head.ExpectContinue && _end == _start)
        {
            _writer.WriteRaw("HTTP/1.1 100 Continue\r\n\r\n"u8);
            _writer.Flush();
        }
        if (_head.Chunked)
        {
            _chunked.Reset();
            while (true)
            {
                int used = _chunked.Decode(_buffer.AsSpan(_start, _end - _start), _body);
                _start += used;
                if (_chunked.IsComplete) return;
                if (Receive() == 0) throw HttpError.IncompleteBody();
            }
        }
        if (_head.ContentLength is long length && length > 0)
        {
            long remaining = length;
            while (true)
            {
                int take = (int)Math.Min(remaining, _end - _start);
                _body.Write(_buffer.AsSpan(_start, take));
                _start += take;
                remaining -= take;
                if (remaining == 0) return;
                if (Receive() == 0) throw HttpError.IncompleteBody();
            }
        }
    }

    private Stream BodyStream()
    {
        if (_body.WrittenCount == 0) return Stream.Null;
        return MemoryMarshal.TryGetArray(_body.WrittenMemory, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(_body.WrittenMemory.ToArray(), writable: false);
    }

    private bool HeadIsBuffered() => _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8) >= 0;

    /// <summary>Receives into the free end of the buffer (compacting or growing it first). Returns 0 at EOF.</summary>
    private int Receive()
    {
        // Never wait on the client while answers to its earlier (pipelined) requests sit in our buffer.
        if (_writer.HasPending) _writer.Flush();
        if (_start == _end) _start = _end = 0;
        if (_end == _buffer.Length)
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            else Array.Resize(ref _buffer, _buffer.Length * 2);
        }
        int n = _socket.Receive(_buffer, _end, _buffer.Length - _end, SocketFlags.None);
        _end += n;
        return n;
    }

    public void Send(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int n = _socket.Send(bytes);
            bytes = bytes[n..];
        }
    }

    private void TrySendError(int status)
    {
        try
        {
            _writer.WriteError(status);
            _writer.Flush();
        }
        catch (Exception e) when (e is SocketException or IOException) { }
    }

    /// <summary>
    /// Shut down our side, then drain briefly before closing, so a client whose unread request
    /// bytes are still arriving gets our response instead of a reset (RFC 9112 §9.6).
    /// </summary>
    private static void CloseGracefully(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
            if (socket.Available > 0 || socket.Poll(0, SelectMode.SelectRead))
            {
                socket.ReceiveTimeout = 100;
                var sink = ArrayPool<byte>.Shared.Rent(4096);
                try { for (int i = 0; i < 16 && socket.Receive(sink) > 0; i++) { } } // bounded: at most ~1.6 s or 64 KiB
                catch (SocketException) { }
                finally { ArrayPool<byte>.Shared.Return(sink); }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        socket.Dispose();
    }
}
