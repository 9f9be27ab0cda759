using System.Runtime.InteropServices;

namespace Prefork.AspNetCore;

/// <summary>The two libc calls .NET has no API for.</summary>
internal static partial class NativeMethods
{
    private const int F_GETFD = 1, F_SETFD = 2, FD_CLOEXEC = 1;

    /// <summary>The parent's pid: it changes (to 1 or a subreaper) when the master dies.</summary>
    [LibraryImport("libc")] internal static partial int getppid();

    [LibraryImport("libc", SetLastError = true)] private static partial int fcntl(int fd, int cmd, int arg);

    /// <summary>
    /// Sets FD_CLOEXEC on an inherited listener, as sd_listen_fds(3) does, so a program the app starts
    /// (Process.Start) does not inherit it and keep the port open after this worker is gone.
    /// </summary>
    internal static void CloseOnExec(int fd)
    {
        int flags = fcntl(fd, F_GETFD, 0);
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
            throw new InvalidOperationException($"Prefork.AspNetCore: fd {fd}, passed as a listening socket (LISTEN_FDS), is not an open file (errno {Marshal.GetLastPInvokeError()})");
    }
}
