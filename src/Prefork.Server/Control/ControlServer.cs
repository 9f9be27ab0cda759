using System.Net.Sockets;
using System.Text;
using Mono.Unix.Native;
using Prefork.Config;
using Serilog;

namespace Prefork.Control;

/// <summary>
/// The control socket `prefork ctl` talks to (Gunicorn's gunicorn.ctl): a Unix stream socket of
/// mode 0600, served on threads of its own. They only read the published <see cref="StatusSnapshot"/>
/// and enqueue commands for the master's loop, so no client, however slow or malformed, can stall
/// the loop. A peer whose uid (SO_PEERCRED) is neither the master's nor root gets one error line
/// and is closed. Framing: see <see cref="ControlProtocol"/>.
/// </summary>
public sealed class ControlServer : IDisposable
{
    /// <summary>How long a client may take to send a whole request line (and to take a reply) before it is dropped.</summary>
    public static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(5);
    /// <summary>Clients served at once; more are told to retry and closed.</summary>
    public const int MaxClients = 16;

    private readonly Socket _listener;
    private readonly ControlProtocol _protocol;
    private readonly uint _masterUid = Syscall.geteuid();
    private int _clients;
    private AcceptThread _accept = null!;

    public string Path { get; }

    private ControlServer(string path, Socket listener, ControlProtocol protocol)
    {
        Path = path;
        _listener = listener;
        _protocol = protocol;
    }

    /// <summary>Where `control_socket` puts the socket: a relative path lies beside the pidfile if one is set, else in the config file's folder. Null when disabled.</summary>
    public static string? SocketPath(GatewayConfig config)
    {
        if (config.Get(Settings.ControlSocket).Length == 0) return null;
        var folder = config.Get(Settings.PidFile).Length > 0 ? System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(config.Get(Settings.PidFile), config.BaseDirectory))! : config.BaseDirectory;
        return System.IO.Path.GetFullPath(config.Get(Settings.ControlSocket), folder);
    }

    /// <summary>
    /// Binds the socket (replacing a stale one a dead master left) and starts serving; after an in-place
    /// upgrade, takes over <paramref name="inheritedFd"/> instead, so `prefork ctl` is answered across the
    /// exec (queued meanwhile). Throws IOException when it cannot.
    /// </summary>
    public static ControlServer Open(string path, Func<StatusSnapshot?> snapshot, CommandQueue commands, int? inheritedFd = null)
    {
        var listener = HandOver.Adopt(inheritedFd, endPoint => endPoint is UnixDomainSocketEndPoint u && u.ToString() == path);
        if (listener is null)
        {
            RemoveStale(path);
            listener = Bind(path);
        }
        var server = new ControlServer(path, listener, new ControlProtocol(snapshot, commands));
        server._accept = new AcceptThread(listener, "control", server.Accepted, () => Volatile.Read(ref server._clients));
        return server;
    }

    /// <summary>Its accept thread: the listener's fd, and the pause around an in-place upgrade's exec.</summary>
    public AcceptThread Accepting => _accept;

    private static Socket Bind(string path)
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite); // before listen: nobody connects earlier
            listener.Listen(64);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            listener.Dispose();
            throw new IOException($"cannot open control_socket {path}: {e.Message}", e);
        }
        return listener;
    }

    /// <summary>A socket file nobody listens on (a master that was killed) is removed; one in use, or a file of another kind, is an error.</summary>
    private static void RemoveStale(string path)
    {
        if (Syscall.lstat(path, out var stat) != 0) return; // nothing there
        if ((stat.st_mode & FilePermissions.S_IFMT) != FilePermissions.S_IFSOCK)
            throw new IOException($"control_socket {path} exists and is not a socket; remove it or set control_socket elsewhere");
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            throw new IOException($"control_socket {path} is in use by another running master; set control_socket to another path (or \"\" to disable it)");
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            File.Delete(path);
        }
    }

    private void Accepted(Socket client)
    {
        try
        {
            if (Refusal(client) is { } why)
            {
                Log.Warning("Control socket: refused a client: {Reason}", why);
                Reject(client, why);
            }
            else if (Interlocked.Increment(ref _clients) > MaxClients)
            {
                Interlocked.Decrement(ref _clients);
                Reject(client, $"too many control clients at once (at most {MaxClients}); retry");
            }
            else new Thread(() => Serve(client)) { IsBackground = true, Name = "control client" }.Start();
        }
        catch (Exception e)
        {
            Log.Warning("Control socket: {Error}", e.Message);
            client.Dispose();
        }
    }

    /// <summary>Why this peer may not use the socket (SO_PEERCRED), or null.</summary>
    private string? Refusal(Socket client)
    {
        Span<byte> cred = stackalloc byte[12]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        if (client.GetRawSocketOption(1 /* SOL_SOCKET */, 17 /* SO_PEERCRED */, cred) < 12) return "cannot read its credentials (SO_PEERCRED)";
        uint uid = BitConverter.ToUInt32(cred[4..]);
        int pid = BitConverter.ToInt32(cred);
        return uid == 0 || uid == _masterUid ? null : $"pid {pid} runs as uid {uid}, neither the master's ({_masterUid}) nor root";
    }

    private static void Reject(Socket client, string why)
    {
        using (client)
        {
            client.SendTimeout = 1000;
            try { client.Send(Encoding.UTF8.GetBytes(ControlProtocol.ErrorLine(null, why))); }
            catch (SocketException) { }
        }
    }

    /// <summary>One client: request lines in, reply lines out, until it closes, sends something too long or takes too long.</summary>
    private void Serve(Socket client)
    {
        try
        {
            using var stream = new NetworkStream(client, ownsSocket: true);
            client.ReceiveTimeout = client.SendTimeout = (int)ClientTimeout.TotalMilliseconds;
            var line = new MemoryStream();
            var buffer = new byte[4096];
            long lineStarted = Environment.TickCount64;
            while (true)
            {
                int n = stream.Read(buffer);
                if (n == 0) return;
                // A request trickled in a byte at a time would keep every read within its timeout: the line has a deadline too.
                if (line.Length > 0 && Environment.TickCount64 - lineStarted > ClientTimeout.TotalMilliseconds) return;
                int start = 0;
                for (int i = 0; i < n; i++)
                {
                    if (buffer[i] != '\n') continue;
                    line.Write(buffer, start, i - start);
                    var reply = _protocol.Handle(Encoding.UTF8.GetString(line.GetBuffer(), 0, (int)line.Length));
                    stream.Write(Encoding.UTF8.GetBytes(reply));
                    line.SetLength(0);
                    start = i + 1;
                }
                if (line.Length == 0) lineStarted = Environment.TickCount64;
                line.Write(buffer, start, n - start);
                if (line.Length > ControlProtocol.MaxRequestBytes)
                {
                    stream.Write(Encoding.UTF8.GetBytes(ControlProtocol.ErrorLine(null, $"request longer than {ControlProtocol.MaxRequestBytes} bytes; closing")));
                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // Timed out, or went away: drop it.
        }
        catch (Exception e)
        {
            Log.Warning(e, "Control socket: a client's request failed");
        }
        finally
        {
            Interlocked.Decrement(ref _clients);
        }
    }

    public void Dispose()
    {
        _accept.Dispose();
        _listener.Dispose();
        try { File.Delete(Path); } catch (IOException) { }
    }
}
