using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Prefork.Interop;

/// <summary>
/// The libc calls made through source-generated [LibraryImport] stubs (blittable arguments, no
/// marshalling allocation, AOT-safe). Two kinds, and only these:
///  - the worker engines' calls on raw descriptors (epoll, eventfd, accept4, recv/send, poll, read/write,
///    shutdown, close, getsockname) and the log files' write: the hot path, where Mono.Unix would add flag/errno translation
///    (recv/send MessageFlags), array copies (poll, epoll_wait) or Sockaddr objects (accept4, getsockname);
///  - what Mono.Unix lacks: eventfd, dup3, pipe2, fcntl(F_DUPFD_CLOEXEC), prctl, pthread_sigmask, sched_setscheduler, and open with O_TMPFILE (not in its OpenFlags);
///    posix_spawn for command workers is in <see cref="Spawn"/>.
/// Every other POSIX call goes through Mono.Unix.Native (Syscall, Stdlib); see Libc for the helpers on it.
/// Every socket the workers serve is a plain non-blocking fd; nothing goes through .NET's socket
/// engine, so no hidden thread or event loop runs underneath.
/// Functions return what libc returns; <see cref="Errno"/> reads errno right after a failure.
/// </summary>
internal static unsafe partial class Native
{
    private const string Libc = "libc";

    // errno values (Linux, all architectures .NET runs on)
    public const int EINTR = 4, EAGAIN = 11, ENFILE = 23, EMFILE = 24, ECONNABORTED = 103, EPROTO = 71;
    public const int EEXIST = 17, EISDIR = 21, EOPNOTSUPP = 95;

    // flags
    public const int SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
    public const int EPOLL_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800, EFD_CLOEXEC = 0x80000;
    public const int EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 0x001, EPOLLOUT = 0x004, EPOLLERR = 0x008, EPOLLHUP = 0x010,
        EPOLLRDHUP = 0x2000, EPOLLEXCLUSIVE = 1u << 28, EPOLLONESHOT = 1u << 30;
    public const int MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000;
    public const int SHUT_WR = 1;
    public const short POLLIN = 0x001, POLLOUT = 0x004, POLLERR = 0x008, POLLHUP = 0x010;
    public const ushort AF_INET = 2, AF_INET6 = 10;
    public const int O_RDWR = 2, O_CLOEXEC = 0x80000;
    // O_TMPFILE includes O_DIRECTORY, whose value differs on ARM (040000) from the generic one (0200000).
    public static readonly int O_TMPFILE = 0x400000 |
        (RuntimeInformation.ProcessArchitecture is Architecture.Arm or Architecture.Arm64 ? 0x4000 : 0x10000);

    public static int Errno => Marshal.GetLastPInvokeError();

    [LibraryImport(Libc, SetLastError = true)] public static partial int epoll_create1(int flags);
    [LibraryImport(Libc, SetLastError = true)] private static partial int epoll_ctl(int epfd, int op, int fd, byte* ev);
    [LibraryImport(Libc, SetLastError = true)] public static partial int epoll_wait(int epfd, byte* events, int maxEvents, int timeoutMs);
    [LibraryImport(Libc, SetLastError = true)] public static partial int eventfd(uint initval, int flags);
    [LibraryImport(Libc, SetLastError = true)] public static partial int accept4(int fd, byte* addr, int* addrLen, int flags);
    [LibraryImport(Libc, SetLastError = true)] public static partial nint recv(int fd, byte* buf, nint len, int flags);
    [LibraryImport(Libc, SetLastError = true)] public static partial nint send(int fd, byte* buf, nint len, int flags);
    [LibraryImport(Libc, SetLastError = true)] public static partial nint read(int fd, byte* buf, nint len);
    [LibraryImport(Libc, SetLastError = true)] public static partial nint write(int fd, byte* buf, nint len);
    [LibraryImport(Libc, SetLastError = true)] public static partial int close(int fd);
    [LibraryImport(Libc, SetLastError = true)] public static partial int shutdown(int fd, int how);
    [LibraryImport(Libc, SetLastError = true)] public static partial int poll(PollFd* fds, nuint count, int timeoutMs);
    [LibraryImport(Libc, SetLastError = true)] public static partial int getsockname(int fd, byte* addr, int* addrLen);
    [LibraryImport(Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)] public static partial int open(string path, int flags, int mode);
    [LibraryImport(Libc, SetLastError = true)] public static partial int dup3(int oldFd, int newFd, int flags);
    [LibraryImport(Libc, SetLastError = true)] public static partial int pipe2(int* fds, int flags);
    [LibraryImport(Libc, SetLastError = true)] public static partial int fcntl(int fd, int command, int arg);
    public const int F_DUPFD_CLOEXEC = 1030;
    [LibraryImport(Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int prctl(int option, string arg2, nint arg3, nint arg4, nint arg5);

    /// <summary>Unblocks, in the calling thread, the signals 1–64 whose bits are set (bit N-1 for signal N). 0, or an errno.</summary>
    public static int UnblockSignals(ulong mask)
    {
        var set = stackalloc ulong[16]; // glibc's sigset_t: 1024 bits, signal N at bit N-1
        set[0] = mask;
        return pthread_sigmask(SIG_UNBLOCK, set, null);
    }
    private const int SIG_UNBLOCK = 1;
    [LibraryImport(Libc)] private static partial int pthread_sigmask(int how, ulong* set, ulong* oldSet);

    public const int SCHED_OTHER = 0, SCHED_BATCH = 3, ESRCH = 3;
    [LibraryImport(Libc, SetLastError = true)] private static partial int sched_setscheduler(int tid, int policy, int* param);
    [LibraryImport(Libc, SetLastError = true)] public static partial int sched_getscheduler(int tid);

    /// <summary>Sets one thread's policy (a non-real-time one: its priority is 0). 0, or -1 and errno.</summary>
    public static int SetSchedulingPolicy(int tid, int policy)
    {
        int priority = 0; // struct sched_param { int sched_priority; }
        return sched_setscheduler(tid, policy, &priority);
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    // struct epoll_event is packed on x86-64 (12 bytes) and naturally aligned elsewhere (16 bytes).
    public static readonly int EpollEventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
    private static readonly int EpollDataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    public static uint EventFlags(byte* events, int i) => Unsafe.ReadUnaligned<uint>(events + i * EpollEventSize);
    public static ulong EventData(byte* events, int i) => Unsafe.ReadUnaligned<ulong>(events + i * EpollEventSize + EpollDataOffset);

    public static int EpollCtl(int epfd, int op, int fd, uint events, ulong data)
    {
        byte* ev = stackalloc byte[16];
        Unsafe.WriteUnaligned(ev, events);
        Unsafe.WriteUnaligned(ev + EpollDataOffset, data);
        return epoll_ctl(epfd, op, fd, ev);
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for <paramref name="events"/> on one fd; returns revents, 0 on timeout.</summary>
    public static short PollOne(int fd, short events, int timeoutMs)
    {
        var p = new PollFd { Fd = fd, Events = events };
        int n;
        do n = poll(&p, 1, timeoutMs); while (n < 0 && Errno == EINTR);
        return n > 0 ? p.Revents : (short)0;
    }
}
