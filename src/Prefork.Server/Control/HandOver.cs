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
