using System.Buffers;

namespace Prefork.Http;

/// <summary>
/// Frames whole requests out of the bytes one connection receives: the head (parsed by
/// <see cref="RequestParser"/>) and then the body (Content-Length or chunked), incrementally. It does
/// no socket I/O: a worker class reads into <see cref="GetReadSpace"/>, calls <see cref="Advance"/>, and asks
/// <see cref="TryTakeRequest"/> whether a whole request is there. Blocking and non-blocking drivers
/// share it, so all three worker classes frame requests the same way.
/// </summary>
/// <remarks>
/// A body is received whole before the app is called, a small one in memory and a large one in a
/// temp file (<see cref="BodyBuffer"/> says why), so a worker's memory does not grow with uploads.
/// The receive buffer is rented while bytes are buffered and given back by <see cref="ReleaseIfEmpty"/>,
/// so an idle keep-alive connection holds no buffer. A head is only (re-)parsed when a line has
/// ended since the last attempt or the line in progress is over its limit, so a client sending one
/// byte at a time costs one scan per line, not per byte.
/// </remarks>
public sealed class RequestReader
{
    private const int InitialBufferSize = 4096;
    private const int BodyBufferSize = 64 * 1024; // a body streams through: fewer, larger reads

    private readonly HttpLimits _limits;
    private readonly int _maxLine;
    private byte[] _buffer = [];
    private int _start, _end;     // unconsumed bytes are _buffer[_start.._end]
    private int _scanned;         // bytes before this index were already looked at for line ends
    private int _lineStart;       // where the head line in progress begins
    private bool _lineEnded;      // a line ended in bytes not yet parsed

    private bool _inBody;
    private bool _continueWanted;
    private long _bodyRemaining;  // Content-Length bodies
    private ChunkedDecoder? _chunked;
    private readonly BodyBuffer _body;
    private readonly BodyStream _bodyStream = new();

    /// <param name="tempDirectory">Where bodies too large for memory go (worker_tmp_dir); null for $TMPDIR or /tmp.</param>
    public RequestReader(HttpLimits limits, string? tempDirectory = null)
    {
        _limits = limits;
        _body = new BodyBuffer(tempDirectory ?? Path.GetTempPath());
        _maxLine = Math.Max(limits.RequestLine, limits.FieldSize) + 2;
    }

    /// <summary>The request taken by the last successful <see cref="TryTakeRequest"/>.</summary>
    public RequestHead Head { get; } = new();
    /// <summary>Its body (empty stream when none), valid until the next call of <see cref="TryTakeRequest"/>.</summary>
    public Stream Body => BodyLength == 0 ? Stream.Null : _bodyStream;
    public long BodyLength { get; private set; }

    /// <summary>Some bytes of a request (head or body) have arrived that were not yet taken.</summary>
    public bool HasPartialRequest => _inBody || _end > _start;
    /// <summary>The head was taken and its body is still arriving.</summary>
    public bool InBody => _inBody;

    /// <summary>Free space to receive into (compacting or growing the buffer first).</summary>
    public Span<byte> GetReadSpace()
    {
        if (_start == _end) _start = _end = _scanned = _lineStart = 0;
        if (_buffer.Length == 0) _buffer = ArrayPool<byte>.Shared.Rent(_inBody ? BodyBufferSize : InitialBufferSize);
        else if (_inBody && _buffer.Length < BodyBufferSize) Grow(BodyBufferSize);
        if (_end == _buffer.Length)
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _scanned -= _start;
                _lineStart = Math.Max(0, _lineStart - _start);
                _start = 0;
            }
            else
            {
                // Only a head can be this long (bodies are moved out as they arrive); TryTakeRequest
                // refuses heads over the limit before the buffer grows far.
                Grow(_buffer.Length * 2);
            }
        }
        return _buffer.AsSpan(_end);
    }

    private void Grow(int size)
    {
        var bigger = ArrayPool<byte>.Shared.Rent(size);
        Buffer.BlockCopy(_buffer, 0, bigger, 0, _end);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    /// <summary>Records that <paramref name="count"/> bytes were received into <see cref="GetReadSpace"/>.</summary>
    public void Advance(int count) => _end += count;

    /// <summary>
    /// True when a whole request, head and body, has been received: <see cref="Head"/>,
    /// <see cref="Body"/> and <see cref="BodyLength"/> describe it until the next call. False when
    /// more bytes are needed. Throws <see cref="HttpError"/> when the request is invalid.
    /// </summary>
    public bool TryTakeRequest()
    {
        if (!_inBody)
        {
            // Drivers ask for the next request once the last one is answered: its body (and temp file) can go.
            _body.Clear();
            if (!TryTakeHead()) return false;
        }
        if (_inBody && !TryTakeBody()) return false;
        _inBody = false;
        _continueWanted = false;
        return true;
    }

    /// <summary>
    /// True once per request whose client sent "Expect: 100-continue" and is waiting for the
    /// interim response before sending the body: the driver writes "100 Continue" then.
    /// </summary>
    public bool TakeContinueRequest()
    {
        if (!_continueWanted) return false;
        _continueWanted = false;
        return true;
    }

    private bool TryTakeHead()
    {
        if (_end == _start) return false;
        // Look at the new bytes only: parse again when a line ended, or when the line in progress is
        // already longer than any line may be (the parser then says which limit, 414 or 431).
        if (_scanned < _end)
        {
            var fresh = _buffer.AsSpan(_scanned, _end - _scanned);
            int lastNewline = fresh.LastIndexOf((byte)'\n');
            if (lastNewline >= 0)
            {
                _lineEnded = true;
                _lineStart = _scanned + lastNewline + 1;
            }
            _scanned = _end;
        }
        if (!_lineEnded && _end - Math.Max(_lineStart, _start) <= _maxLine) return false;
        _lineEnded = false;

        var bytes = _buffer.AsSpan(_start, _end - _start);
        if (!RequestParser.TryParseHead(bytes, Head, _limits, out int consumed))
        {
            if (bytes.Length >= _limits.MaxHeadBytes) throw HttpError.LimitRequestFieldSize(_limits.FieldSize);
            return false;
        }
        _start += consumed;
        _scanned = _lineStart = _start;

        BodyLength = 0;
        if (Head.Chunked)
        {
            _chunked ??= new ChunkedDecoder(_limits);
            _chunked.Reset();
        }
        else if (Head.ContentLength is long length && length > 0)
        {
            if (length > _limits.Body) throw HttpError.LimitRequestBody(_limits.Body);
            _bodyRemaining = length;
        }
        else return true;
        _inBody = true;
        _continueWanted = Head.ExpectContinue;
        return true;
    }

    private bool TryTakeBody()
    {
        var available = _buffer.AsSpan(_start, _end - _start);
        if (Head.Chunked)
        {
            _start += _chunked!.Decode(available, _body);
            if (!_chunked.IsComplete) return WaitForBody(available.Length);
        }
        else
        {
            int take = (int)Math.Min(_bodyRemaining, available.Length);
            _body.Write(available[..take]);
            _start += take;
            _bodyRemaining -= take;
            if (_bodyRemaining > 0) return WaitForBody(take);
        }
        BodyLength = _body.Length;
        _bodyStream.Reset(_body);
        return true;
    }

    /// <summary>The body is incomplete: a client that already sent some of it is not waiting for 100 Continue.</summary>
    private bool WaitForBody(int bytesSeen)
    {
        if (bytesSeen > 0) _continueWanted = false;
        return false;
    }

    /// <summary>The taken request's trailer fields (chunked bodies only), or null.</summary>
    public Gateway.RequestHeaders? Trailers => Head.Chunked ? _chunked?.Trailers : null;

    /// <summary>Bytes received and not yet taken: for what precedes the first request (a PROXY protocol header).</summary>
    public ReadOnlySpan<byte> Unconsumed => _buffer.AsSpan(_start, _end - _start);

    /// <summary>Takes <paramref name="count"/> bytes of <see cref="Unconsumed"/> as handled elsewhere.</summary>
    public void Consume(int count)
    {
        _start += count;
        _scanned = _lineStart = _start;
        _lineEnded = false;
    }

    /// <summary>At EOF: throws if the client went away in the middle of a request; false if between requests.</summary>
    public void CheckEndOfInput()
    {
        if (_inBody) throw HttpError.IncompleteBody();
        if (_end > _start)
        {
            // The head will never complete; if what came is already over a limit, say which (414/431), as the parser would.
            RequestParser.TryParseHead(_buffer.AsSpan(_start, _end - _start), Head, _limits, out _);
            throw HttpError.InvalidRequestLine("connection closed in the middle of the request head");
        }
    }

    /// <summary>Gives the receive buffer back to the pool when nothing is buffered (the connection goes idle).</summary>
    public void ReleaseIfEmpty()
    {
        if (_start != _end || _buffer.Length == 0) return;
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
        _start = _end = _scanned = _lineStart = 0;
    }

    /// <summary>Forgets everything, for the next connection.</summary>
    public void Reset()
    {
        _start = _end;
        _inBody = _continueWanted = _lineEnded = false;
        BodyLength = 0;
        _body.Clear();
        ReleaseIfEmpty();
    }
}
