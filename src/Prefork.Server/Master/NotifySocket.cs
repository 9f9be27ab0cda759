using System.Text;
using Mono.Unix.Native;
using Serilog;

namespace Prefork.Master;

/// <summary>
/// The master's end of sd_notify for command workers: one Unix datagram socket, named in each
/// worker's NOTIFY_SOCKET, as systemd's own is for a service. SO_PASSCRED makes the kernel attach
/// the sender's pid to every datagram (SCM_CREDENTIALS), so a datagram is attributed to the worker
/// whose pid sent it and nobody else can speak for a worker; datagrams from other pids are refused
/// (systemd's NotifyAccess=main: a worker's own children do not count).
/// The name is abstract (@prefork-PID-notify): no file to clean up, and a worker that runs as
/// another user can still reach it. It survives an in-place upgrade (the fd is handed over).
/// </summary>
internal sealed class NotifySocket : IDisposable
{
    /// <summary>Largest datagram read; the rest of a longer one is cut (sd_notify messages are a few lines).</summary>
    public const int MaxDatagram = 4096;

    public int Fd { get; }
    /// <summary>What workers get as NOTIFY_SOCKET.</summary>
    public string Address { get; }

    private readonly HashSet<int> _refused = [];

    private NotifySocket(int fd, string address)
    {
        Fd = fd;
        Address = address;
    }

    /// <summary>Binds @prefork-PID-notify, or takes over <paramref name="inheritedFd"/> (already bound) after an in-place upgrade.</summary>
    public static NotifySocket Open(int? inheritedFd)
    {
        var address = $"@prefork-{Environment.ProcessId}-notify";
        if (inheritedFd is int fd)
        {
            Syscall.fcntl(fd, FcntlCommand.F_SETFD, 1);
            return new NotifySocket(fd, address);
        }
        fd = Syscall.socket(UnixAddressFamily.AF_UNIX, UnixSocketType.SOCK_DGRAM,
            UnixSocketFlags.SOCK_CLOEXEC | UnixSocketFlags.SOCK_NONBLOCK, 0);
        if (fd < 0) throw new IOException($"socket(AF_UNIX, SOCK_DGRAM): {Stdlib.GetLastError()}");
        if (Syscall.setsockopt(fd, UnixSocketProtocol.SOL_SOCKET, UnixSocketOptionName.SO_PASSCRED, 1) != 0 ||
            Syscall.bind(fd, new SockaddrUn(address[1..], linuxAbstractNamespace: true)) != 0)
        {
            var error = Stdlib.GetLastError();
            Syscall.close(fd);
            throw new IOException($"cannot open the workers' notify socket {address}: {error}");
        }
        return new NotifySocket(fd, address);
    }

    /// <summary>Reads the waiting datagrams (up to 256); each one's text goes to <paramref name="onMessage"/> with the sender's pid.</summary>
    public unsafe void Receive(Func<int, bool> isWorker, Action<int, string> onMessage)
    {
        var buffer = new byte[MaxDatagram];
        var control = new byte[(int)Syscall.CMSG_SPACE(12)]; // struct ucred: pid, uid, gid
        fixed (byte* data = buffer)
        {
            for (int received = 0; received < 256; received++) // bounded: a chatty worker cannot hold up the loop; the rest waits for the next turn
            {
                var message = new Msghdr
                {
                    msg_iov = [new Iovec { iov_base = (nint)data, iov_len = (ulong)buffer.Length }],
                    msg_iovlen = 1,
                    msg_control = control,
                    msg_controllen = control.Length,
                };
                long n = Syscall.recvmsg(Fd, message, MessageFlags.MSG_DONTWAIT);
                if (n < 0) return; // EAGAIN: all read
                int pid = SenderPid(message);
                if (pid <= 0 || !isWorker(pid))
                {
                    if (_refused.Add(pid)) // once per pid: a stranger cannot flood the log
                        Log.Warning("Refused a notify message from pid {SenderPid}, which is no worker of this master", pid);
                    continue;
                }
                onMessage(pid, Encoding.UTF8.GetString(buffer, 0, (int)Math.Min(n, buffer.Length)));
            }
        }
    }

    private static int SenderPid(Msghdr message)
    {
        for (long offset = Syscall.CMSG_FIRSTHDR(message); offset != -1; offset = Syscall.CMSG_NXTHDR(message, offset))
        {
            var header = Cmsghdr.ReadFromBuffer(message, offset);
            if (header.cmsg_level == UnixSocketProtocol.SOL_SOCKET && header.cmsg_type == UnixSocketControlMessage.SCM_CREDENTIALS)
                return BitConverter.ToInt32(message.msg_control!, (int)Syscall.CMSG_DATA(message, offset));
        }
        return 0;
    }

    /// <summary>Lets the next image inherit it across an in-place upgrade.</summary>
    public void KeepAcrossExec(bool keep) => Syscall.fcntl(Fd, FcntlCommand.F_SETFD, keep ? 0 : 1);

    public void Dispose() => Syscall.close(Fd);
}
