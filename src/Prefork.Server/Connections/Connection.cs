using Prefork.Config;
using Prefork.Http;
using Serilog;

namespace Prefork.Connections;

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
    /// <summary>epoll: its last response is still going out; then it lingers.</summary>
    Closing,
    /// <summary>Our side is shut down; the client's last bytes are read and dropped until it closes (or briefly).</summary>
    Lingering,
}

/// <summary>What <see cref="Connection.Serve"/> leaves the caller to do next.</summary>
public enum ServeStep { NeedInput, Close, InFlight }

/// <summary>
/// One client connection, whatever carries its bytes (a <see cref="Transport"/>): the bytes
/// received so far (a <see cref="RequestReader"/>), its addresses, and the deadline of whatever it
/// is waiting for. <see cref="Serve"/> is the hot path every worker class shares: take each whole
/// request received, call the app, write the response, batching pipelined responses into one
/// write. Instances are reused for later connections.
/// </summary>
public sealed class Connection
{
    private const int LingerMs = 1000;

    private static readonly byte[] ContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray();

    private readonly CancellationToken _stopping;
    private readonly int _headerTimeoutMs, _keepaliveMs, _ioTimeoutMs;
    private long _headStartedAt;
    private readonly IpAllowList? _proxyAllowList; // set when proxy_protocol is on
    private bool _proxyPending;                    // the PROXY header has not been read yet

    /// <param name="stopping">Set when the worker stops: requests from then on are answered with Connection: close.</param>
    public Connection(GatewayConfig c, HttpLimits limits, CancellationToken stopping, Transport transport)
    {
        _stopping = stopping;
        Transport = transport;
        transport.Attach(Info);
        Reader = new RequestReader(limits, c.WorkerTmpDir);
        _headerTimeoutMs = c.Milliseconds(Settings.HeaderTimeout); // 0: no limit
        _keepaliveMs = c.Milliseconds(Settings.Keepalive);         // 0: no keep-alive
        _ioTimeoutMs = c.Milliseconds(Settings.Timeout);           // 0: no limit
        if (c.Get(Settings.ProxyProtocol)) _proxyAllowList = IpAllowList.Parse(c.Get(Settings.ProxyAllowIps));
    }

    public Transport Transport { get; }
    public int Fd => Transport.Fd;
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
    public bool Broken => Transport.Broken;
    public bool ServedAny { get; private set; }
    /// <summary>Requests taken on this connection so far (a deadline check tells whether a read brought one).</summary>
    public int RequestsTaken { get; private set; }
    public int QueuedBytes => Transport.QueuedBytes;

    public void Open(int fd)
    {
        Transport.Open(fd);
        Protocol.RequestCounters.ConnectionOpened();
        State = ConnectionState.Active;
        PeerClosed = ServedAny = false;
        RequestsTaken = 0;
        Deadline = 0;
        _headStartedAt = 0;
        _proxyPending = _proxyAllowList is not null;
    }

    // ---- the hot path -----------------------------------------------------------------------------

    /// <summary>
    /// Answers every whole request already received, in order, writing the responses in one go.
    /// Returns <see cref="ServeStep.NeedInput"/> when more bytes are needed from the socket (input a TLS
    /// transport had already taken is read and served first), <see cref="ServeStep.Close"/>
    /// when the connection is done, or (only when <paramref name="blocking"/> is false)
    /// <see cref="ServeStep.InFlight"/> with the request's completion in <paramref name="inFlight"/>.
    /// </summary>
    public ServeStep Serve(IRequestHandler handler, ResponseWriter writer, bool keepAliveAllowed, bool blocking, out ValueTask<bool> inFlight)
    {
        inFlight = default;
        writer.Attach(Transport);
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
                    if (_proxyPending) Protocol.RequestCounters.ProxyRefused();
                    writer.WriteError(e.Status);
                    writer.Flush();
                    return ServeStep.Close;
                }
                if (!ready)
                {
                    // TLS: bytes SslStream took from the socket and not yet read raise no event: take them now, so
                    // NeedInput always means "wait for the socket".
                    if (!PeerClosed && Transport.HasBufferedInput)
                    {
                        if (Receive() != ReceiveResult.Error) continue;
                        writer.Discard(); // the connection failed (Broken): nothing more goes out, and it closes without lingering
                        return ServeStep.Close;
                    }
                    if (Reader.TakeContinueRequest()) writer.WriteRaw(ContinueResponse);
                    writer.Flush();
                    return PeerClosed ? ServeStep.Close : ServeStep.NeedInput;
                }

                _headStartedAt = 0;
                ServedAny = true;
                RequestsTaken++;
                bool keepAlive = keepAliveAllowed && _keepaliveMs > 0 && !_stopping.IsCancellationRequested;
                writer.BeginResponse();
                var pending = handler.ProcessAsync(Reader.Head, Reader.Body, Reader.BodyLength, Info, writer, keepAlive, Reader.Trailers);
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

    /// <summary>One non-blocking read into the request buffer.</summary>
    public ReceiveResult Receive()
    {
        var result = Transport.Receive(Reader.GetReadSpace(), out int read);
        if (result == ReceiveResult.Data) Reader.Advance(read);
        else if (result == ReceiveResult.Eof) PeerClosed = true;
        return result;
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
        Transport.SendIfRoom(ResponseWriter.ErrorResponse(408, headRequest: false, out _));
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
        Transport.ShutdownOutput();
        Deadline = now + LingerMs;
        return !DiscardInput();
    }

    /// <summary>Reads and drops what arrived; true when the client closed (or the socket failed), so lingering is over.</summary>
    public bool DiscardInput() => Transport.DiscardInput();

    /// <summary>Gives up on a client that stopped reading: the response in progress fails at its next write.</summary>
    public void Abort() => Transport.Abort();

    /// <summary>Closes the socket and forgets the connection's state, ready for reuse.</summary>
    public void Close()
    {
        Transport.Close();
        if (State != ConnectionState.Free) Protocol.RequestCounters.ConnectionClosed();
        State = ConnectionState.Free;
        Reader.Reset();
        Deadline = 0;
    }
}
