using Prefork.Config;
using Prefork.Http;
using Prefork.Interop;

namespace Prefork.Connections;

/// <summary>What one non-blocking read brought.</summary>
public enum ReceiveResult { Data, WouldBlock, Eof, Error }

/// <summary>
/// How a connection's bytes move over its socket (a raw non-blocking fd), and what becomes of
/// output the kernel does not take at once: <see cref="BlockingTransport"/> waits for room (sync,
/// threads), <see cref="QueuedTransport"/> queues it for the event loop (epoll). With TLS on, a
/// <see cref="TlsTransport"/> wraps either. A connection serves HTTP over any of them without
/// knowing which.
/// </summary>
public abstract unsafe class Transport : IResponseTransport
{
    private bool _broken;

    public int Fd { get; protected set; } = -1;
    /// <summary>The socket failed (reset, broken pipe, or a write timed out): nothing more can be sent.</summary>
    public virtual bool Broken => _broken;
    /// <summary>Output taken from the writer but not yet by the kernel.</summary>
    public virtual int QueuedBytes => 0;
    public virtual bool NeedsDrain => false;
    /// <summary>TLS: input already taken from the socket and not yet read (the socket will not signal it; <see cref="Connection.Serve"/> reads it).</summary>
    public virtual bool HasBufferedInput => false;
    /// <summary>TLS: the handshake is not over yet.</summary>
    public virtual bool Handshaking => false;

    /// <summary>The connection whose addresses this transport fills in (TLS adds the client certificate).</summary>
    public virtual void Attach(ConnectionInfo info) { }

    public virtual void Open(int fd)
    {
        Fd = fd;
        _broken = false;
    }

    /// <summary>Sends the bytes; throws <see cref="ConnectionLostException"/> when the client is gone.</summary>
    public abstract void Send(ReadOnlySpan<byte> bytes);

    public virtual ValueTask DrainAsync() => ValueTask.CompletedTask;

    /// <summary>Sends what is queued, as far as the kernel takes it. False when the connection failed.</summary>
    public virtual bool SendQueued() => !Broken;

    /// <summary>One non-blocking read into <paramref name="into"/>.</summary>
    public virtual ReceiveResult Receive(Span<byte> into, out int read)
    {
        read = 0;
        while (true)
        {
            nint n;
            fixed (byte* p = into) n = Native.recv(Fd, p, into.Length, 0);
            if (n > 0)
            {
                read = (int)n;
                return ReceiveResult.Data;
            }
            if (n == 0) return ReceiveResult.Eof;
            int errno = Native.Errno;
            if (errno == Native.EINTR) continue;
            if (errno == Native.EAGAIN) return ReceiveResult.WouldBlock;
            _broken = true;
            return ReceiveResult.Error;
        }
    }

    /// <summary>Best effort, never waiting: for a last word (a 408) to a client about to be dropped.</summary>
    public virtual void SendIfRoom(ReadOnlySpan<byte> bytes)
    {
        fixed (byte* p = bytes) Native.send(Fd, p, bytes.Length, Native.MSG_NOSIGNAL | Native.MSG_DONTWAIT);
    }

    /// <summary>Shuts our side: the client sees EOF after what was sent.</summary>
    public virtual void ShutdownOutput() => Native.shutdown(Fd, Native.SHUT_WR);

    /// <summary>Reads and drops what arrived; true when the client closed (or the socket failed).</summary>
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

    /// <summary>Gives up on the client: what is being sent fails at its next write.</summary>
    public virtual void Abort() => _broken = true;

    /// <summary>Closes the socket and drops what is queued, ready for the next connection.</summary>
    public virtual void Close()
    {
        if (Fd >= 0) Native.close(Fd);
        Fd = -1;
    }

    /// <summary>Bytes the kernel took (0 when its buffer is full), or -1 when the connection failed.</summary>
    protected int TrySend(ReadOnlySpan<byte> bytes)
    {
        while (true)
        {
            nint n;
            fixed (byte* p = bytes) n = Native.send(Fd, p, bytes.Length, Native.MSG_NOSIGNAL);
            if (n >= 0) return (int)n;
            int errno = Native.Errno;
            if (errno == Native.EINTR) continue;
            if (errno == Native.EAGAIN) return 0;
            _broken = true;
            return -1;
        }
    }

    protected void ThrowIfBroken()
    {
        if (Broken) throw new ConnectionLostException("connection already failed");
    }

    protected ConnectionLostException Lost() => new($"the client went away (errno {Native.Errno})");

    protected ConnectionLostException TimedOut()
    {
        _broken = true;
        return new ConnectionLostException("the client did not read its response within `timeout`");
    }
}

/// <summary>Sync and threads: a send returns once the kernel took every byte (waiting for room, up to `timeout`).</summary>
/// <param name="timeoutMs">`timeout` (<see cref="GatewayConfig.Milliseconds"/>): how long a client may take none of our output; 0 for ever.</param>
public sealed class BlockingTransport(int timeoutMs) : Transport
{
    private readonly int _waitMs = timeoutMs > 0 ? timeoutMs : -1; // poll's "for ever"

    public override void Send(ReadOnlySpan<byte> bytes)
    {
        ThrowIfBroken();
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
            if ((Native.PollOne(Fd, Native.POLLOUT, _waitMs) & (Native.POLLOUT | Native.POLLERR | Native.POLLHUP)) == 0)
                throw TimedOut();
        }
    }
}
