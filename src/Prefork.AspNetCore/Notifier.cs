using System.Net.Sockets;
using System.Text;

namespace Prefork.AspNetCore;

/// <summary>
/// sd_notify(3) without libsystemd: newline-separated KEY=VALUE datagrams to the Unix datagram
/// socket named by NOTIFY_SOCKET ('@' = the abstract namespace). The master attributes them by the
/// sender's credentials, so they are sent from this process, never from a helper.
/// </summary>
internal sealed class Notifier : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly UnixDomainSocketEndPoint _master;

    public string Name { get; }

    public Notifier(string name)
    {
        Name = name;
        _socket.Blocking = false; // a master that stops reading costs a lost datagram, never a stuck heartbeat
        _master = new UnixDomainSocketEndPoint(name.StartsWith('@') ? "\0" + name[1..] : name);
    }

    /// <summary>Sends one datagram; false (with the reason) when it could not be delivered, e.g. the master is gone.</summary>
    public bool Send(string message, out string? error)
    {
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(message), SocketFlags.None, _master);
            error = null;
            return true;
        }
        catch (SocketException e)
        {
            error = e.Message;
            return false;
        }
        catch (ObjectDisposedException)
        {
            error = "the app has stopped";
            return false;
        }
    }

    public void Dispose() => _socket.Dispose();
}
