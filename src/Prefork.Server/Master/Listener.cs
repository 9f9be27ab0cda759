using System.Net;
using System.Net.Sockets;
using Mono.Unix.Native;
using Prefork.Config;
using Serilog;

namespace Prefork.Master;

/// <summary>
/// A listening socket bound by the master and inherited by every worker. .NET opens sockets with
/// FD_CLOEXEC; clearing it on these fds alone is what lets a spawned worker accept on them.
/// </summary>
public sealed class Listener : IDisposable
{
    public ListenAddress Address { get; }
    public Socket Socket { get; }
    public int Fd => (int)Socket.Handle;

    private Listener(ListenAddress address, Socket socket)
    {
        Address = address;
        Socket = socket;
    }

    /// <summary>Where it actually listens (port 0 resolved), for logs; https when <paramref name="tls"/> (certfile is set: TCP listeners speak TLS, unix ones stay plain).</summary>
    public string Describe(bool tls) => Socket.LocalEndPoint switch
    {
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip => $"{(tls ? "https" : "http")}://[{ip.Address}]:{ip.Port}",
        IPEndPoint ip => $"{(tls ? "https" : "http")}://{ip.Address}:{ip.Port}",
        UnixDomainSocketEndPoint u => $"unix:{u}",
        var other => other?.ToString() ?? Address.Text,
    };

    /// <summary>A listener handed over by the previous image of this master (in-place upgrade).</summary>
    public static Listener Adopt(ListenAddress address, int fd)
    {
        var listener = new Listener(address, new Socket(new SafeSocketHandle(fd, ownsHandle: true)));
        listener.SetInheritable(true);
        return listener;
    }

    private const int SolSocket = 1, SoReuseAddr = 2; // <asm-generic/socket.h>

    public static Listener Bind(ListenAddress address, int backlog, string unixMode)
    {
        Socket socket;
        if (address.InheritedFd is int fd)
        {
            socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
            // A datagram socket or one nobody called listen() on would only fail later, in every worker.
            if (socket.SocketType != SocketType.Stream || (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.AcceptConnection)! == 0)
                throw new IOException($"fd {fd} is not a listening stream socket");
        }
        else if (address.EndPoint is UnixDomainSocketEndPoint unix)
        {
            var path = unix.ToString();
            RemoveStaleUnixSocket(path);
            socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Bind(unix);
            Syscall.chmod(path, NativeConvert.FromOctalPermissionString(unixMode.PadLeft(4, '0')));
            socket.Listen(backlog);
        }
        else
        {
            var endPoint = address.EndPoint is DnsEndPoint dns
                ? new IPEndPoint(Dns.GetHostAddresses(dns.Host).First(), dns.Port)
                : (IPEndPoint)address.EndPoint!;
            socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            // SO_REUSEADDR alone, set raw: .NET's ReuseAddress also sets SO_REUSEPORT on Linux, which
            // would let a second master bind the same port and silently take half its connections.
            socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            if (endPoint.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = false;
            try
            {
                socket.Bind(endPoint);
                socket.Listen(backlog);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new IOException($"cannot listen at {address.Text}: {e.Message}", e);
            }
        }
        // Linux copies TCP_NODELAY to every accepted connection: set once here (systemd's sockets
        // included), it costs the workers no setsockopt per connection.
        if (socket.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6) socket.NoDelay = true;
        var listener = new Listener(address, socket);
        listener.SetInheritable(true);
        return listener;
    }

    /// <summary>A file left by a master that died is removed; a socket someone still listens on is not.</summary>
    private static void RemoveStaleUnixSocket(string path)
    {
        if (!File.Exists(path)) return;
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            throw new IOException($"{path} is in use by a running server");
        }
        catch (SocketException)
        {
            Log.Information("Removing stale socket file {Path}", path);
            File.Delete(path);
        }
    }

    public void SetInheritable(bool inheritable)
    {
        if (Syscall.fcntl(Fd, FcntlCommand.F_SETFD, inheritable ? 0 : 1 /* FD_CLOEXEC */) < 0)
            throw new IOException($"fcntl(F_SETFD) on {Address.Text}: {Stdlib.GetLastError()}");
    }

    public void Dispose()
    {
        Socket.Dispose();
        if (Address.EndPoint is UnixDomainSocketEndPoint unix && Address.InheritedFd is null)
            try { File.Delete(unix.ToString()); } catch (IOException) { }
    }
}
