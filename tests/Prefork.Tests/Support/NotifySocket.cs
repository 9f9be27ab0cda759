using System.Net.Sockets;
using System.Text;

namespace Prefork.Tests.Support;

/// <summary>
/// The systemd side of sd_notify: a Unix datagram socket the test owns, bound to a path or an
/// abstract name, recording every datagram the server sends. <see cref="Name"/> is what goes in
/// NOTIFY_SOCKET ('@' for abstract, as systemd writes it).
/// </summary>
public sealed class NotifySocket : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly List<string> _messages = [];
    private readonly Thread _reader;
    private readonly string? _path;
    private volatile bool _closed;

    public string Name { get; }

    public NotifySocket(bool @abstract)
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        if (@abstract)
        {
            Name = "@prefork-test-notify-" + id;
            _socket.Bind(new UnixDomainSocketEndPoint("\0" + Name[1..]));
        }
        else
        {
            _path = Name = Path.Combine(Path.GetTempPath(), $"prefork-notify-{id}.sock");
            _socket.Bind(new UnixDomainSocketEndPoint(_path));
        }
        _socket.ReceiveTimeout = 200;
        _reader = new Thread(Receive) { IsBackground = true, Name = "notify-socket" };
        _reader.Start();
    }

    private void Receive()
    {
        var buffer = new byte[65536];
        while (!_closed)
        {
            try
            {
                int n = _socket.Receive(buffer);
                lock (_messages) _messages.Add(Encoding.UTF8.GetString(buffer, 0, n));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut) { }
            catch (Exception) when (_closed) { return; }
        }
    }

    /// <summary>Every datagram so far, in arrival order.</summary>
    public IReadOnlyList<string> Messages { get { lock (_messages) return _messages.ToList(); } }

    /// <summary>The datagrams that change the service's state, reduced to that line: READY=1, RELOADING=1, STOPPING=1.</summary>
    public IReadOnlyList<string> States =>
        Messages.SelectMany(m => m.Split('\n')).Where(l => l is "READY=1" or "RELOADING=1" or "STOPPING=1").ToList();

    /// <summary>Waits (bounded) until <paramref name="done"/> holds over the datagrams received.</summary>
    public void WaitUntil(Func<IReadOnlyList<string>, bool> done, TimeSpan timeout, string what, Func<string>? log = null)
    {
        if (!Wait.Until(() => done(Messages), timeout))
            throw new TimeoutException($"notify socket: {what} not seen within {timeout}. Received:\n{string.Join("\n---\n", Messages)}\n" + log?.Invoke());
    }

    /// <summary>The value of NAME= in a datagram, or null.</summary>
    public static string? Field(string message, string name) =>
        message.Split('\n').FirstOrDefault(l => l.StartsWith(name + "=", StringComparison.Ordinal))?[(name.Length + 1)..];

    public void Dispose()
    {
        _closed = true;
        _socket.Dispose();
        _reader.Join(2000);
        if (_path is not null) File.Delete(_path);
    }
}
