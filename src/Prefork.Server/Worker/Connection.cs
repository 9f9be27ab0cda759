using System.Buffers;
using System.Threading.Tasks.Sources;
using Prefork.Config;
using Prefork.Http;
using Serilog;
using Prefork.Interop;

namespace Prefork.Worker;

/// <summary>Where a connection is in its life; what each state means depends a little on the worker class.</summary>
public enum ConnectionState
{
    /// <summary>Not open (a free slot in the <see cref="ConnectionTable"/>).</summary>
    Free,
    /// <summary>Owned by whoever is reading from it or serving it right now.</summary>
    Active,
    /// <summary>Waiting for bytes: in the threads worker's poller, or registered for reading with the epoll loop.</summary>
    Parked,
    /// <summary>epoll: its request awaits (an asynchronous body); the loop serves others meanwhile.</summary>
    InFlight,
    /// <summary>Our side is shut down; the client's last bytes are read and dropped until it closes (or briefly).</summary>
    Lingering,
}

/// <summary>What <see cref="Connection.Serve"/> leaves the caller to do next.</summary>
public enum ServeStep { NeedInput, Close, InFlight }

/// <summary>
/// One accepted socket, as a raw non-blocking fd: the bytes received so far (a
/// <see cref="RequestReader"/>), its addresses, the output the kernel has not taken yet, and the
/// deadline of whatever it is waiting for. <see cref="Serve"/> is the hot path every worker class
/// shares: take each whole request received, call the app, write the response, batching pipelined
/// responses into one write. Instances are reused for later connections.
/// </summary>
public sealed unsafe class Connection : IResponseTransport, IValueTaskSource
{
    /// <summary>Queued output above which a streamed body waits (epoll), and below which it resumes.</summary>
    private const int HighWater = 256 * 1024, LowWater = 64 * 1024;
    /// <summary>Queued output above which the epoll worker stops reading more requests from the client.</summary>
    public const int ReadPauseBytes = HighWater;
    private const int LingerMs = 1000;

    private static readonly byte[] ContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray();

    private readonly WorkerContext _worker;
    private readonly bool _queueOutput;
    private readonly int _headerTimeoutMs, _keepaliveMs, _ioTimeoutMs;

    // Output not yet taken by the kernel (queued mode only): _out[_outStart.._outEnd].
    private byte[]? _out;
    private int _outStart, _outEnd;
    private ManualResetValueTaskSourceCore<bool> _drain = new() { RunContinuationsAsynchronously = true };
    private bool _drainWaiting;
    private long _headStartedAt;
    private readonly IpAllowList? _proxyAllowList; // set when proxy_protocol is on
    private bool _proxyPending;                    // the PROXY header has not been read yet

    /// <param name="queueOutput">
    /// False: <see cref="Send"/> blocks (polling for writability) until the kernel took every byte
    /// (sync, threads). True: what the kernel does not take at once is queued for
    /// <see cref="SendQueued"/> to finish when the socket is writable again (epoll).
    /// </param>
    public Connection(WorkerContext worker, bool queueOutput)
    {
        _worker = worker;
        _queueOutput = queueOutput;
        Reader = new RequestReader(worker.Limits, worker.Config.WorkerTmpDir);
        var c = worker.Config;
        _headerTimeoutMs = c.HeaderTimeout * 1000;
        _keepaliveMs = c.Keepalive * 1000;
        _ioTimeoutMs = c.Timeout > 0 ? c.Timeout * 1000 : -1;
        if (c.ProxyProtocol) _proxyAllowList = IpAllowList.Parse(c.ProxyAllowIps);
        _drain.SetResult(true); // so the first Reset starts from a completed state
    }

    public int Fd { get; private set; } = -1;
    /// <summary>Slot and generation, as registered with epoll (see <see cref="ConnectionTable"/>).</summary>
    public ulong Token { get; set; }
    public RequestReader Reader { get; }
    public ConnectionInfo Info { get; } = new();
    public ConnectionState State { get; set; }
    /// <summary>Environment.TickCount64 at which the current wait gives up; 0 for never.</summary>
    public long Deadline { get; set; }
    /// <summary>The client sent EOF (it may still read our responses).</summary>
    public bool PeerClosed { get; private set; }
    /// <summary>The socket failed (reset, broken pipe, or a write timed out): nothing more can be sent.</summary>
    public bool Broken { get; private set; }
    public bool ServedAny { get; private set; }
    /// <summary>Requests taken on this connection so far (a deadline check tells whether a read brought one).</summary>
    public int RequestsTaken { get; private set; }
    /// <summary>epoll: the exchange a request in flight is using, and its completion.</summary>
    public Exchange? Lent { get; set; }
    /// <summary>Registered with the worker's epoll set, and for which events (maintained by the worker class).</summary>
    public bool Registered { get; set; }
    public uint Interest { get; set; }
    public int QueuedBytes => _outEnd - _outStart;
    public bool IsEmpty => !Reader.HasPartialRequest && QueuedBytes == 0;

    public void Open(int fd)
    {
        Fd = fd;
        State = ConnectionState.Active;
        PeerClosed = Broken = ServedAny = Registered = false;
        RequestsTaken = 0;
        Interest = 0;
        Deadline = 0;
        _headStartedAt = 0;
        _proxyPending = _proxyAllowList is not null;
    }

    // ---- the hot path -----------------------------------------------------------------------------

    /// <summary>
    /// Answers every whole request already received, in order, writing the responses in one go.
    /// Returns <see cref="ServeStep.NeedInput"/> when more bytes are needed, <see cref="ServeStep.Close"/>
    /// when the connection is done, or (only when <paramref name="blocking"/> is false)
    /// <see cref="ServeStep.InFlight"/> with the request's completion in <paramref name="inFlight"/>.
    /// </summary>
    public ServeStep Serve(Exchange x, bool keepAliveAllowed, bool blocking, out ValueTask<bool> inFlight)
    {
        inFlight = default;
        var writer = x.Writer;
        writer.Attach(this);
        try
        {
            while (true)
            {
                bool ready;
                try
                {
                    ready = (!_proxyPending || TryTakeProxyHeader()) && Reader.TryTakeRequest();
                    if (!ready && PeerClosed) Reader.CheckEndOfInput();
                }
                catch (HttpError e)
                {
                    Log.Debug("Bad request from {Remote}: {Error}", Info.RemoteAddr, e.Message);
                    writer.WriteError(e.Status);
                    writer.Flush();
                    return ServeStep.Close;
                }
                if (!ready)
                {
                    if (Reader.TakeContinueRequest()) writer.WriteRaw(ContinueResponse);
                    writer.Flush();
                    return PeerClosed ? ServeStep.Close : ServeStep.NeedInput;
                }

                _headStartedAt = 0;
                ServedAny = true;
                RequestsTaken++;
                bool keepAlive = keepAliveAllowed && _keepaliveMs > 0 && !_worker.IsStopping;
                var pending = x.Processor.ProcessAsync(Reader.Head, Reader.Body, Reader.BodyLength, Info, writer, keepAlive, x.Slot, Reader.Trailers);
                if (!pending.IsCompleted)
                {
                    if (!blocking)
                    {
                        inFlight = pending;
                        return ServeStep.InFlight;
                    }
                    keepAlive = pending.AsTask().GetAwaiter().GetResult();
                }
                else keepAlive = pending.Result;
                if (!keepAlive)
                {
                    writer.Flush();
                    return ServeStep.Close;
                }
            }
        }
        catch (ConnectionLostException)
        {
            writer.Discard();
            return ServeStep.Close;
        }
    }

    /// <summary>
    /// proxy_protocol: the connection must open with a PROXY v1/v2 header from an allowed peer; the
    /// client's addresses are taken from it. False while more bytes are needed.
    /// </summary>
    private bool TryTakeProxyHeader()
    {
        if (!Info.IsUnixSocket && !_proxyAllowList!.Contains(Info.RemoteIp)) throw HttpError.ForbiddenProxy(Info.RemoteAddr);
        switch (ProxyProtocol.TryParse(Reader.Unconsumed, out var header, out int consumed, out var error))
        {
            case ProxyHeaderStatus.Parsed:
                Reader.Consume(consumed);
                Info.Apply(header);
                _proxyPending = false;
                return true;
            case ProxyHeaderStatus.Invalid:
                throw HttpError.InvalidProxyHeader(error);
            default:
                if (PeerClosed && !Reader.Unconsumed.IsEmpty) throw HttpError.InvalidProxyHeader("connection closed in the middle of the header");
                return false;
        }
    }

    // ---- input -------------------------------------------------------------------------------------

    public enum ReceiveResult { Data, WouldBlock, Eof, Error }

    /// <summary>One non-blocking read into the request buffer.</summary>
    public ReceiveResult Receive()
    {
        var space = Reader.GetReadSpace();
        while (true)
        {
            nint n;
            fixed (byte* p = space) n = Native.recv(Fd, p, space.Length, 0);
            if (n > 0)
            {
                Reader.Advance((int)n);
                return ReceiveResult.Data;
            }
            if (n == 0)
            {
                PeerClosed = true;
                return ReceiveResult.Eof;
            }
            int errno = Native.Errno;
            if (errno == Native.EINTR) continue;
            if (errno == Native.EAGAIN) return ReceiveResult.WouldBlock;
            Broken = true;
            return ReceiveResult.Error;
        }
    }

    /// <summary>
    /// Sets <see cref="Deadline"/> for the wait ahead: `header_timeout` for the whole head (the first
    /// request's from the connection, a later one's from its first byte), `timeout` of silence in the
    /// middle of a body, `keepalive` between requests.
    /// </summary>
    public void SetReadDeadline(long now)
    {
        if (Reader.InBody) Deadline = _ioTimeoutMs > 0 ? now + _ioTimeoutMs : 0;
        else if (Reader.HasPartialRequest || !ServedAny)
        {
            // One start for the silence before the first byte and the head after it: else a client
            // silent for almost header_timeout and then trickling would hold a worker twice as long.
            if (_headStartedAt == 0) _headStartedAt = now;
            Deadline = _headerTimeoutMs > 0 ? _headStartedAt + _headerTimeoutMs : 0;
        }
        else Deadline = now + _keepaliveMs;
    }

    /// <summary>The wait timed out: a client in the middle of a request hears 408 (best effort), an idle one nothing.</summary>
    public void OnReadTimeout()
    {
        if (!Reader.HasPartialRequest || Broken) return;
        Log.Debug("Timed out reading a request from {Remote}", Info.RemoteAddr);
        var response = ResponseWriter.ErrorResponse(408, headRequest: false, out _);
        fixed (byte* p = response) Native.send(Fd, p, response.Length, Native.MSG_NOSIGNAL | Native.MSG_DONTWAIT);
    }

    // ---- output ------------------------------------------------------------------------------------

    /// <summary>Sends the bytes: blocking until the kernel took them, or queuing what it did not (epoll).</summary>
    public void Send(ReadOnlySpan<byte> bytes)
    {
        if (Broken) throw new ConnectionLostException("connection already failed");
        if (_queueOutput)
        {
            if (QueuedBytes == 0)
            {
                int sent = TrySend(bytes);
                if (sent < 0) throw Lost();
                bytes = bytes[sent..];
                if (bytes.IsEmpty) return;
            }
            Enqueue(bytes);
            return;
        }
        while (!bytes.IsEmpty)
        {
            int sent = TrySend(bytes);
            if (sent < 0) throw Lost();
            if (sent > 0)
            {
                bytes = bytes[sent..];
                continue;
            }
            // The client reads slower than we write: wait for room, but not forever.
            if ((Native.PollOne(Fd, Native.POLLOUT, _ioTimeoutMs) & (Native.POLLOUT | Native.POLLERR | Native.POLLHUP)) == 0)
            {
                Broken = true;
                throw new ConnectionLostException("the client did not read its response within `timeout`");
            }
        }
    }

    public bool NeedsDrain => QueuedBytes > HighWater;

    public ValueTask DrainAsync()
    {
        if (!NeedsDrain) return ValueTask.CompletedTask;
        if (Broken) throw new ConnectionLostException("connection already failed");
        _drain.Reset();
        _drainWaiting = true;
        return new ValueTask(this, _drain.Version);
    }

    /// <summary>Queued mode: sends what is queued, as far as the kernel takes it. False when the connection failed.</summary>
    public bool SendQueued()
    {
        if (QueuedBytes > 0)
        {
            int sent = TrySend(_out.AsSpan(_outStart, QueuedBytes));
            if (sent < 0)
            {
                FailDrainWaiter();
                return false;
            }
            _outStart += sent;
        }
        if (QueuedBytes == 0) ReleaseOutput();
        if (_drainWaiting && QueuedBytes <= LowWater)
        {
            _drainWaiting = false;
            _drain.SetResult(true);
        }
        return true;
    }

    /// <summary>Bytes the kernel took (0 when its buffer is full), or -1 when the connection failed.</summary>
    private int TrySend(ReadOnlySpan<byte> bytes)
    {
        while (true)
        {
            nint n;
            fixed (byte* p = bytes) n = Native.send(Fd, p, bytes.Length, Native.MSG_NOSIGNAL);
            if (n >= 0) return (int)n;
            int errno = Native.Errno;
            if (errno == Native.EINTR) continue;
            if (errno == Native.EAGAIN) return 0;
            Broken = true;
            return -1;
        }
    }

    private ConnectionLostException Lost() => new($"the client went away (errno {Native.Errno})");

    private void Enqueue(ReadOnlySpan<byte> bytes)
    {
        if (_out is null) _out = ArrayPool<byte>.Shared.Rent(Math.Max(16 * 1024, bytes.Length));
        else if (_out.Length - _outEnd < bytes.Length)
        {
            int queued = QueuedBytes;
            var target = queued + bytes.Length <= _out.Length ? _out : ArrayPool<byte>.Shared.Rent(Math.Max(_out.Length * 2, queued + bytes.Length));
            Buffer.BlockCopy(_out, _outStart, target, 0, queued);
            if (!ReferenceEquals(target, _out)) ArrayPool<byte>.Shared.Return(_out);
            _out = target;
            _outStart = 0;
            _outEnd = queued;
        }
        bytes.CopyTo(_out.AsSpan(_outEnd));
        _outEnd += bytes.Length;
    }

    private void ReleaseOutput()
    {
        if (_out is not null) ArrayPool<byte>.Shared.Return(_out);
        _out = null;
        _outStart = _outEnd = 0;
    }

    private void FailDrainWaiter()
    {
        if (!_drainWaiting) return;
        _drainWaiting = false;
        _drain.SetException(new ConnectionLostException("the connection closed while the response was streaming"));
    }

    // ---- closing -----------------------------------------------------------------------------------

    /// <summary>
    /// Starts a lingering close (RFC 9112 §9.6): shut our side so the client sees EOF after the last
    /// response, and keep reading what it still sends until it closes, so a request that crossed our
    /// FIN meets an orderly end instead of a reset. False when the socket can simply be closed.
    /// </summary>
    public bool BeginLingeringClose(long now)
    {
        if (Broken || PeerClosed || Fd < 0) return false;
        Native.shutdown(Fd, Native.SHUT_WR);
        Deadline = now + LingerMs;
        return !DiscardInput();
    }

    /// <summary>Reads and drops what arrived; true when the client closed (or the socket failed), so lingering is over.</summary>
    public bool DiscardInput()
    {
        byte* sink = stackalloc byte[4096];
        for (int i = 0; i < 64; i++)
        {
            nint n = Native.recv(Fd, sink, 4096, 0);
            if (n > 0) continue;
            if (n == 0) return true;
            int errno = Native.Errno;
            if (errno == Native.EINTR) continue;
            return errno != Native.EAGAIN;
        }
        return false; // a client still pouring bytes in: keep lingering until the deadline
    }

    /// <summary>Gives up on a client that stopped reading: the response in progress fails at its next write.</summary>
    public void Abort()
    {
        Broken = true;
        FailDrainWaiter();
    }

    /// <summary>Closes the socket and forgets the connection's state, ready for reuse.</summary>
    public void Close()
    {
        FailDrainWaiter();
        if (Fd >= 0) Native.close(Fd);
        Fd = -1;
        State = ConnectionState.Free;
        Reader.Reset();
        ReleaseOutput();
        Lent = null;
        Deadline = 0;
        Registered = false;
        Interest = 0;
    }

    // ---- IValueTaskSource: DrainAsync's completion, reused for every wait ---------------------------

    void IValueTaskSource.GetResult(short token) => _drain.GetResult(token);
    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _drain.GetStatus(token);
    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _drain.OnCompleted(continuation, state, token, flags);
}
