using System.Net;
using System.Net.Sockets;
using Mono.Unix.Native;

namespace Prefork.Control;

/// <summary>
/// The master's own listeners (control socket, metrics) across an in-place upgrade: the previous image
/// leaves them open through the exec, and the new one takes them over, so clients wait in the
/// listen queue for a moment instead of being refused.
/// </summary>
public static class HandOver
{
    /// <summary>
    /// The listener behind <paramref name="fd"/>, private again (FD_CLOEXEC, so workers do not inherit it),
    /// when <paramref name="wanted"/> accepts its address; otherwise (the config moved it) it is closed and
    /// null is returned, and the caller binds anew. A unix socket left behind that way is removed.
    /// </summary>
    public static Socket? Adopt(int? fd, Func<EndPoint, bool> wanted)
    {
        if (fd is not { } f) return null;
        Syscall.fcntl(f, FcntlCommand.F_SETFD, 1);
        var socket = new Socket(new SafeSocketHandle(f, ownsHandle: true));
        var bound = socket.LocalEndPoint;
        if (bound is not null && wanted(bound)) return socket;
        socket.Dispose();
        if (bound is UnixDomainSocketEndPoint unix && unix.ToString() is { Length: > 0 } path) File.Delete(path);
        return null;
    }
}

/// <summary>
/// Lets a listener's accept loop stop taking connections before an in-place upgrade's exec: a client
/// it has accepted would be cut off by the exec, one it has not waits in the kernel's queue for the
/// new image. The loop polls instead of blocking in accept, so that it hears <see cref="Close"/>.
/// </summary>
public sealed class AcceptGate
{
    private volatile bool _closing, _stopped;

    /// <summary>For the loop: true when a client waits to be accepted; false once the gate closes (the loop then ends).</summary>
    public bool WaitForClient(Socket listener)
    {
        while (!_closing)
            if (listener.Poll(100_000, SelectMode.SelectRead) && !_closing) return true;
        _stopped = true;
        return false;
    }

    /// <summary>Stops the loop and waits (bounded) until the clients it took are answered: <paramref name="busy"/> counts them.</summary>
    public void Close(Func<int> busy, TimeSpan within)
    {
        _closing = true;
        long until = Environment.TickCount64 + (long)within.TotalMilliseconds;
        while ((!_stopped || busy() > 0) && Environment.TickCount64 < until) Thread.Sleep(5);
    }

    /// <summary>After a failed exec: open again; the caller starts a new loop.</summary>
    public void Reopen() => _closing = _stopped = false;
}
