using System.Runtime.InteropServices;
using Prefork.Interop;

namespace Prefork.Connections;

/// <summary>
/// One epoll instance and the buffer its events come back in. Each registration carries a 64-bit
/// token (see <see cref="ConnectionTable"/>) instead of a pointer, so a stale event for a closed and
/// reused fd is recognised and dropped.
/// </summary>
internal sealed unsafe class Epoll : IDisposable
{
    private readonly int _fd;
    private readonly byte* _events;
    private readonly int _capacity;

    public Epoll(int capacity = 256)
    {
        _fd = Native.epoll_create1(Native.EPOLL_CLOEXEC);
        if (_fd < 0) throw new IOException($"epoll_create1 failed: errno {Native.Errno}");
        _capacity = capacity;
        _events = (byte*)NativeMemory.AllocZeroed((nuint)(capacity * Native.EpollEventSize));
    }

    public void Add(int fd, uint events, ulong token) => Check(Native.EpollCtl(_fd, Native.EPOLL_CTL_ADD, fd, events, token), "ADD");
    public void Modify(int fd, uint events, ulong token) => Check(Native.EpollCtl(_fd, Native.EPOLL_CTL_MOD, fd, events, token), "MOD");

    /// <summary>Removes a registration; a fd already closed (and so already gone from the set) is fine.</summary>
    public void Remove(int fd) => Native.EpollCtl(_fd, Native.EPOLL_CTL_DEL, fd, 0, 0);

    /// <summary>Waits for events (EINTR counts as none); read them with <see cref="Flags"/> and <see cref="Token"/>.</summary>
    public int Wait(int timeoutMs)
    {
        int n = Native.epoll_wait(_fd, _events, _capacity, timeoutMs);
        if (n >= 0) return n;
        int errno = Native.Errno;
        if (errno == Native.EINTR) return 0;
        throw new IOException($"epoll_wait failed: errno {errno}");
    }

    /// <summary>
    /// Waits for one event, into the caller's own stack: several threads may wait on one epoll set,
    /// and epoll gives each event to one of them. False on timeout (or EINTR).
    /// </summary>
    public bool WaitOne(int timeoutMs, out uint flags, out ulong token)
    {
        byte* ev = stackalloc byte[16];
        int n = Native.epoll_wait(_fd, ev, 1, timeoutMs);
        if (n < 0 && Native.Errno != Native.EINTR) throw new IOException($"epoll_wait failed: errno {Native.Errno}");
        flags = n > 0 ? Native.EventFlags(ev, 0) : 0;
        token = n > 0 ? Native.EventData(ev, 0) : 0;
        return n > 0;
    }

    public uint Flags(int i) => Native.EventFlags(_events, i);
    public ulong Token(int i) => Native.EventData(_events, i);

    private static void Check(int result, string op)
    {
        if (result < 0) throw new IOException($"epoll_ctl {op} failed: errno {Native.Errno}");
    }

    public void Dispose()
    {
        Native.close(_fd);
        NativeMemory.Free(_events);
    }
}
