using Mono.Unix.Native;

namespace Prefork.Interop;

/// <summary>
/// A self-pipe: signal handlers write a byte, a loop blocked in poll() wakes up. The same
/// trick Gunicorn's arbiter uses, so no work is ever done inside a signal handler.
/// </summary>
public sealed class WakeUp : IDisposable
{
    public int ReadFd { get; }
    private readonly int _writeFd;

    public WakeUp()
    {
        if (Syscall.pipe(out int r, out int w) != 0) throw new IOException("pipe: " + Stdlib.GetLastError());
        ReadFd = r;
        _writeFd = w;
        foreach (var fd in new[] { r, w })
        {
            Syscall.fcntl(fd, FcntlCommand.F_SETFD, 1); // FD_CLOEXEC: never leak into children
            var flags = Syscall.fcntl(fd, FcntlCommand.F_GETFL);
            Syscall.fcntl(fd, FcntlCommand.F_SETFL, flags | (int)OpenFlags.O_NONBLOCK);
        }
    }

    public unsafe void Signal()
    {
        byte b = 1;
        Syscall.write(_writeFd, &b, 1);
    }

    /// <summary>Empties the pipe after a wake-up.</summary>
    public unsafe void Drain()
    {
        byte* buf = stackalloc byte[64];
        while (Syscall.read(ReadFd, buf, 64) > 0) { }
    }

    public void Dispose()
    {
        Syscall.close(ReadFd);
        Syscall.close(_writeFd);
    }
}
