using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Prefork.Http;
using Serilog;
using Prefork.Interop;

namespace Prefork.Connections;

/// <summary>
/// A listening socket the worker inherited, accepted from with accept4 (non-blocking,
/// close-on-exec; TCP_NODELAY comes from the listener, set by the master). It knows its own address, so a connection's local address costs no syscall
/// unless the socket listens on a wildcard address.
/// </summary>
internal sealed unsafe class ListenSocket
{
    private readonly bool _tcp;
    private readonly string _localAddr, _localPort;
    private readonly bool _wildcard;
    // The last peer address formatted: a few clients (proxies, load balancers) make most connections.
    private UInt128 _lastPeer = UInt128.MaxValue;
    private string _lastPeerText = "";
    private IPAddress? _lastPeerIp;

    // Held so the Socket (and the SafeHandle that owns the fd) is never finalized while the worker
    // accepts on the bare fd: a finalizer would close the listener under it.
    private readonly Socket _socket;

    public ListenSocket(Socket socket)
    {
        _socket = socket;
        Fd = (int)socket.Handle;
        _tcp = socket.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6;
        if (socket.LocalEndPoint is IPEndPoint ip)
        {
            _localAddr = ip.Address.ToString();
            _localPort = ip.Port.ToString(CultureInfo.InvariantCulture);
            _wildcard = ip.Address.Equals(IPAddress.Any) || ip.Address.Equals(IPAddress.IPv6Any);
        }
        else (_localAddr, _localPort) = ("localhost", "");
    }

    public int Fd { get; }

    public enum Result { Accepted, Empty, Failed }

    /// <summary>Accepts one connection if one is waiting (other workers race for it), filling in its addresses.</summary>
    public Result TryAccept(out int fd, ConnectionInfo info)
    {
        byte* addr = stackalloc byte[128];
        while (true)
        {
            int length = 128;
            fd = Native.accept4(Fd, addr, &length, Native.SOCK_NONBLOCK | Native.SOCK_CLOEXEC);
            if (fd >= 0) break;
            int errno = Native.Errno;
            if (errno is Native.EINTR or Native.ECONNABORTED or Native.EPROTO) continue; // that client gave up; try the next
            if (errno == Native.EAGAIN) return Result.Empty;
            // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of descriptors or memory. The caller backs off.
            Log.Warning("accept4 failed: errno {Errno}{Hint}", errno,
                errno is Native.EMFILE or Native.ENFILE ? " (out of file descriptors: raise the fd limit or lower worker_connections)" : "");
            return Result.Failed;
        }
        FillAddresses(fd, addr, info);
        return Result.Accepted;
    }

    private void FillAddresses(int fd, byte* addr, ConnectionInfo info)
    {
        info.IsUnixSocket = !_tcp;
        if (!_tcp)
        {
            (info.RemoteAddr, info.RemotePort, info.LocalAddr, info.LocalPort, info.RemoteIp) = ("", "", _localAddr, _localPort, null);
            return;
        }
        (info.RemoteAddr, info.RemotePort) = Format(addr, cache: true);
        info.RemoteIp = _lastPeerIp; // trust checks (forwarded_allow_ips, proxy_allow_ips) need the address, not its text
        if (_wildcard)
        {
            byte* local = stackalloc byte[128];
            int length = 128;
            if (Native.getsockname(fd, local, &length) == 0)
            {
                (info.LocalAddr, info.LocalPort) = Format(local, cache: false);
                return;
            }
        }
        (info.LocalAddr, info.LocalPort) = (_localAddr, _localPort);
    }

    private (string Address, string Port) Format(byte* sockaddr, bool cache)
    {
        ushort family = *(ushort*)sockaddr;
        int port = BinaryPrimitives.ReverseEndianness(*(ushort*)(sockaddr + 2));
        var portText = port.ToString(CultureInfo.InvariantCulture);
        if (family == Native.AF_INET)
        {
            var key = (UInt128)(*(uint*)(sockaddr + 4));
            if (cache && key == _lastPeer) return (_lastPeerText, portText);
            var ip = new IPAddress(new ReadOnlySpan<byte>(sockaddr + 4, 4));
            var text = ip.ToString();
            if (cache) (_lastPeer, _lastPeerText, _lastPeerIp) = (key, text, ip);
            return (text, portText);
        }
        if (family == Native.AF_INET6)
        {
            var bytes = new ReadOnlySpan<byte>(sockaddr + 8, 16);
            var key = BinaryPrimitives.ReadUInt128LittleEndian(bytes) ^ ((UInt128)1 << 127); // never equal to an IPv4 key
            if (cache && key == _lastPeer) return (_lastPeerText, portText);
            var ip = new IPAddress(bytes);
            var text = ip.ToString();
            if (cache) (_lastPeer, _lastPeerText, _lastPeerIp) = (key, text, ip);
            return (text, portText);
        }
        return ("", "");
    }
}
