using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Tasks.Sources;
using Prefork.Http;

namespace Prefork.Connections;

/// <summary>
/// HTTPS on a connection: an <see cref="SslStream"/> between the HTTP engine and the transport that
/// carries the ciphertext (<see cref="BlockingTransport"/> for sync and threads,
/// <see cref="QueuedTransport"/> for epoll). Unix-socket connections pass through in plain.
/// </summary>
/// <remarks>
/// <para>How SslStream runs without a thread of its own, in every worker class: its inner stream
/// (<see cref="Wire"/>) never blocks a read. SslStream is only ever read through its asynchronous
/// API; when it asks the wire for bytes the socket does not have yet, the wire keeps the buffer and
/// returns a pending ValueTask. The engine goes on as with any connection that awaits input: it
/// parks it (epoll set, or poll for sync). When the socket is readable the engine calls
/// <see cref="Receive"/>, which reads the socket into that buffer and completes the pending read;
/// SslStream's continuation runs inline on that very thread (it awaits with ConfigureAwait(false),
/// and the wire's completion does not run continuations asynchronously), decrypts, advances the
/// handshake or completes our read of plaintext. So the handshake and the reads are driven by
/// readiness, one step per readable event, exactly like the plain path.</para>
/// <para>Writes are synchronous: SslStream encrypts into the wire, which hands the ciphertext to the
/// carrying transport — it blocks for room (sync, threads) or queues for EPOLLOUT (epoll), as plain
/// output does, and backpressure (<see cref="NeedsDrain"/>) is the carrier's.</para>
/// <para>SslStream may take more from the socket than one read returns (several records in one
/// segment); the socket will not signal those bytes again. <see cref="Receive"/> therefore reads on
/// until SslStream waits for the socket, and what does not fit the request buffer stays here:
/// <see cref="HasBufferedInput"/> tells <see cref="Connection.Serve"/> to read it before the engine waits for the socket.</para>
/// <para>Allocation: once the handshake is over, a keep-alive request allocates nothing, here or in
/// SslStream (its asynchronous reads use pooled state machines, and the wire's pending read is the
/// wire itself, reset for each read; TlsConnectionTests measures it, on one thread and on two by
/// turns). A connection costs its SslStream and its handshake: 1-10 KB of managed memory measured
/// for the handshake and first request, more when the shared ArrayPool has no buffer to lend
/// (OpenSSL's own state is native).</para>
/// </remarks>
public sealed class TlsTransport : Transport
{
    private const int PlainBufferSize = 16 * 1024; // one TLS record's plaintext at most

    private readonly Transport _socket;
    private readonly TlsServer _server;
    private readonly Wire _wire;
    private ConnectionInfo _info = new();
    private SslStream? _ssl;               // null: TLS is off for this connection (a unix socket)
    private Task? _handshake;
    private bool _handshakeOver;
    private ValueTask<int> _read;          // SslStream's read into _plain, while _reading
    private bool _reading, _eof, _failed;
    private readonly byte[] _plain = new byte[PlainBufferSize];
    private int _plainStart, _plainEnd;

    public TlsTransport(Transport socket, TlsServer server)
    {
        _socket = socket;
        _server = server;
        _wire = new Wire(socket);
    }

    public override bool Broken => base.Broken || _socket.Broken || _failed;
    public override int QueuedBytes => _socket.QueuedBytes;
    public override bool NeedsDrain => _socket.NeedsDrain;
    public override bool HasBufferedInput => _plainEnd > _plainStart || (_reading && _read.IsCompleted);
    public override bool Handshaking => _ssl is not null && !_handshakeOver;

    public override void Attach(ConnectionInfo info) => _info = info;

    public override void Open(int fd)
    {
        base.Open(fd);
        _socket.Open(fd);
        _handshake = null;
        _handshakeOver = _reading = _eof = _failed = false;
        _plainStart = _plainEnd = 0;
        _info.Secure = !_info.IsUnixSocket; // the addresses are filled in before Open
        _info.ClientVerify = "NONE";
        _info.ClientSubjectDn = _info.ClientCertificatePem = null;
        _ssl = _info.Secure ? new SslStream(_wire, leaveInnerStreamOpen: true) : null;
    }

    // ---- input -------------------------------------------------------------------------------------

    /// <summary>Decrypted bytes into <paramref name="into"/>: advances the handshake and the read with what the socket has, never waiting.</summary>
    public override ReceiveResult Receive(Span<byte> into, out int read)
    {
        if (_ssl is null) return _socket.Receive(into, out read);
        // SslStream must resume inline, on this thread (see the remarks): some of its awaits would
        // otherwise capture the epoll loop's SynchronizationContext and resume later, when no
        // socket event is left to bring the connection back.
        var context = SynchronizationContext.Current;
        if (context is null) return ReceiveTls(_ssl, into, out read);
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            return ReceiveTls(_ssl, into, out read);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }
    }

    private ReceiveResult ReceiveTls(SslStream ssl, Span<byte> into, out int read)
    {
        read = 0;
        while (true)
        {
            if (_plainEnd > _plainStart)
            {
                int n = Math.Min(into.Length - read, _plainEnd - _plainStart);
                _plain.AsSpan(_plainStart, n).CopyTo(into[read..]);
                _plainStart += n;
                read += n;
                if (read == into.Length) return ReceiveResult.Data; // the rest waits here (HasBufferedInput)
            }
            if (_failed) return read > 0 ? ReceiveResult.Data : ReceiveResult.Error;
            if (_eof) return read > 0 ? ReceiveResult.Data : ReceiveResult.Eof;

            if (!_handshakeOver)
            {
                _handshake ??= ssl.AuthenticateAsServerAsync(_server.Options);
                if (!_handshake.IsCompleted)
                {
                    if (!FeedWire()) return ReceiveResult.WouldBlock;
                    continue;
                }
                if (!_handshake.IsCompletedSuccessfully)
                {
                    _failed = true;
                    _server.HandshakeFailed(_info.RemoteAddr, _handshake.Exception!.GetBaseException());
                    return ReceiveResult.Error;
                }
                _handshakeOver = true;
                TakeClientCertificate();
            }

            if (!_reading)
            {
                _read = ssl.ReadAsync(_plain);
                _reading = true;
            }
            if (!_read.IsCompleted)
            {
                if (!FeedWire()) return read > 0 ? ReceiveResult.Data : ReceiveResult.WouldBlock;
                continue;
            }
            _reading = false;
            try
            {
                int n = _read.GetAwaiter().GetResult();
                if (n == 0) _eof = true; // close_notify, or the client closed the socket
                _plainStart = 0;
                _plainEnd = n;
            }
            catch (Exception)
            {
                _failed = true; // a bad record, or the socket failed under it
            }
        }
    }

    /// <summary>Gives the bytes the socket has to SslStream's pending read. False when it has none yet (or SslStream waits for nothing).</summary>
    private bool FeedWire() => _wire.ReadPending && _wire.Fill() != ReceiveResult.WouldBlock;

    private void TakeClientCertificate()
    {
        if (_ssl!.RemoteCertificate is not X509Certificate2 cert) return;
        _info.ClientVerify = "SUCCESS"; // the handshake refuses one that does not chain to ca_certs
        _info.ClientSubjectDn = cert.Subject;
        _info.ClientCertificatePem = cert.ExportCertificatePem();
    }

    // ---- output ------------------------------------------------------------------------------------

    public override void Send(ReadOnlySpan<byte> bytes)
    {
        if (_ssl is null)
        {
            _socket.Send(bytes);
            return;
        }
        ThrowIfBroken();
        try
        {
            _ssl.Write(bytes);
        }
        catch (ConnectionLostException)
        {
            throw;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException)
        {
            _failed = true;
            throw e.InnerException as ConnectionLostException ?? new ConnectionLostException($"TLS write failed: {e.Message}");
        }
    }

    public override ValueTask DrainAsync() => _socket.DrainAsync();
    public override bool SendQueued() => _socket.SendQueued();

    /// <summary>Best effort, never waiting (a 408 before closing): encrypted, what the socket does not take is dropped.</summary>
    public override void SendIfRoom(ReadOnlySpan<byte> bytes)
    {
        if (_ssl is null) _socket.SendIfRoom(bytes);
        else if (_handshakeOver && !Broken)
        {
            var copy = bytes.ToArray(); // rare: a last word to a client about to be dropped
            WithoutWaiting(() => _ssl.Write(copy));
        }
    }

    /// <summary>Sends close_notify (best effort), then shuts our side.</summary>
    public override void ShutdownOutput()
    {
        if (_ssl is not null && _handshakeOver && !Broken) WithoutWaiting(() => _ssl.ShutdownAsync().GetAwaiter().GetResult());
        _socket.ShutdownOutput();
    }

    private void WithoutWaiting(Action write)
    {
        _wire.BestEffort = true;
        try { write(); }
        catch (Exception) { _failed = true; }
        finally { _wire.BestEffort = false; }
    }

    public override void Abort()
    {
        base.Abort();
        _socket.Abort();
    }

    public override void Close()
    {
        if (_ssl is not null)
        {
            var context = SynchronizationContext.Current;
            SynchronizationContext.SetSynchronizationContext(null); // as in Receive
            try { EndTls(); }
            finally { SynchronizationContext.SetSynchronizationContext(context); }
        }
        _socket.Close();
        Fd = -1;
    }

    private void EndTls()
    {
        // End whatever SslStream awaits, so its handshake or read finishes (and is observed) before it is disposed.
        _wire.Fail();
        if (_handshake is { IsFaulted: true } && !_handshakeOver && !_failed)
            _server.HandshakeFailed(_info.RemoteAddr, _handshake.Exception!.GetBaseException()); // a client gone or timed out mid-handshake
        if (_reading && _read.IsCompleted)
        {
            try { _read.GetAwaiter().GetResult(); } catch (Exception) { }
        }
        _reading = false;
        _ssl!.Dispose();
        _ssl = null;
    }

    /// <summary>
    /// SslStream's inner stream: the socket, read without ever blocking. A read the socket cannot
    /// serve yet stays pending until <see cref="Fill"/> (the engine saw the socket readable).
    /// Writes go straight to the carrying transport.
    /// </summary>
    private sealed class Wire(Transport socket) : Stream, IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _pending; // continuations run inline, on the thread that fills
        private Memory<byte> _buffer;

        public bool ReadPending { get; private set; }
        /// <summary>Set around a last word (408, close_notify): what the socket does not take at once is dropped.</summary>
        public bool BestEffort { get; set; }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            switch (socket.Receive(buffer.Span, out int n))
            {
                case ReceiveResult.Data: return new ValueTask<int>(n);
                case ReceiveResult.Eof: return new ValueTask<int>(0);
                case ReceiveResult.Error: return ValueTask.FromException<int>(new IOException("the socket failed"));
            }
            _buffer = buffer;
            ReadPending = true;
            _pending.Reset();
            return new ValueTask<int>(this, _pending.Version);
        }

        /// <summary>Reads the socket into the pending read's buffer; completes it (running SslStream on) unless there was nothing.</summary>
        public ReceiveResult Fill()
        {
            var result = socket.Receive(_buffer.Span, out int n);
            if (result == ReceiveResult.WouldBlock) return result;
            ReadPending = false;
            _buffer = default;
            if (result == ReceiveResult.Error) _pending.SetException(new IOException("the socket failed"));
            else _pending.SetResult(result == ReceiveResult.Data ? n : 0);
            return result;
        }

        /// <summary>The connection closes: a pending read fails.</summary>
        public void Fail()
        {
            if (!ReadPending) return;
            ReadPending = false;
            _buffer = default;
            _pending.SetException(new IOException("the connection was closed"));
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (BestEffort) socket.SendIfRoom(buffer);
            else socket.Send(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                Write(buffer.Span);
                return ValueTask.CompletedTask;
            }
            catch (Exception e)
            {
                return ValueTask.FromException(e);
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("SslStream is read asynchronously here");
        public override void Flush() { }
        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        int IValueTaskSource<int>.GetResult(short token) => _pending.GetResult(token);
        ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _pending.GetStatus(token);
        void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _pending.OnCompleted(continuation, state, token, flags);
    }
}
