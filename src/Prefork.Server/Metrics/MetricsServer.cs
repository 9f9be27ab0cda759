using System.Net;
using System.Net.Sockets;
using System.Text;
using Prefork.Config;
using Prefork.Control;
using Serilog;

namespace Prefork.Metrics;

/// <summary>
/// `metrics_bind`: a small HTTP/1.0 listener of the master's own (never the application's socket)
/// for Prometheus and load balancers: GET /metrics (<see cref="Exposition"/>), /ready (200 when the
/// current generation serves at full strength, else 503) and /live (200 while the master's loop
/// turns). Served on threads of its own that read only the published snapshot; every connection
/// gets one answer and is closed, and a client slower than 5 s is dropped. With every slot taken,
/// a new connection evicts the oldest one still silent (no request yet), so idle or slow clients
/// cannot keep a load balancer's probes out.
/// </summary>
public sealed class MetricsServer : IDisposable
{
    private const int MaxHead = 8192, MaxClients = 16;
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(5);
    /// <summary>The loop publishes at least once a second; a snapshot older than this means it is stuck.</summary>
    private static readonly TimeSpan LiveWithin = TimeSpan.FromSeconds(10);

    private readonly Socket _listener;
    private readonly Func<StatusSnapshot?> _snapshot;
    private int _clients;
    private AcceptThread _accept = null!;
    private readonly List<Socket> _silent = []; // connected clients whose request has not arrived yet, oldest first

    public EndPoint LocalEndPoint => _listener.LocalEndPoint!;

    private MetricsServer(Socket listener, Func<StatusSnapshot?> snapshot)
    {
        _listener = listener;
        _snapshot = snapshot;
    }

    /// <summary>
    /// Binds HOST:PORT and starts serving; after an in-place upgrade, takes over <paramref name="inheritedFd"/>
    /// instead, so probes and scrapes wait in its queue across the exec rather than being refused.
    /// IOException when it cannot.
    /// </summary>
    public static MetricsServer Open(string bind, Func<StatusSnapshot?> snapshot, int? inheritedFd = null)
    {
        var address = ListenAddress.Parse(bind);
        var endPoint = address.EndPoint is DnsEndPoint dns
            ? new IPEndPoint(Dns.GetHostAddresses(dns.Host)[0], dns.Port) : address.EndPoint!;
        var listener = HandOver.Adopt(inheritedFd, bound => bound.Equals(endPoint)) ?? Bind(bind, endPoint);
        var server = new MetricsServer(listener, snapshot);
        server._accept = new AcceptThread(listener, "metrics", server.Accepted, () => Volatile.Read(ref server._clients));
        return server;
    }

    /// <summary>Its accept thread: the listener's fd, and the pause around an in-place upgrade's exec.</summary>
    public AcceptThread Accepting => _accept;

    private static Socket Bind(string bind, EndPoint endPoint)
    {
        var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // SO_REUSEADDR alone, as Listener sets it: .NET's ReuseAddress adds SO_REUSEPORT on Linux,
            // which would let a second master take half of the /ready and /live probes.
            listener.SetRawSocketOption(1 /* SOL_SOCKET */, 2 /* SO_REUSEADDR */, BitConverter.GetBytes(1));
            listener.Bind(endPoint);
            listener.Listen(64);
        }
        catch (SocketException e)
        {
            listener.Dispose();
            throw new IOException($"cannot listen at metrics_bind {bind}: {e.Message}", e);
        }
        return listener;
    }

    private void Accepted(Socket client)
    {
        lock (_silent)
        {
            if (Volatile.Read(ref _clients) >= MaxClients && _silent.Count > 0)
            {
                // Its thread's read ends at once (EOF) and frees the slot; the new client waits for it below.
                try { _silent[0].Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
                _silent.RemoveAt(0);
            }
        }
        // An evicted client's thread gives its slot back within moments; one answering a request, soon.
        if (!WaitForSlot())
        {
            client.Dispose();
            return;
        }
        lock (_silent) _silent.Add(client);
        new Thread(() => Serve(client)) { IsBackground = true, Name = "metrics client" }.Start();
    }

    /// <summary>Takes a client slot, waiting up to a second for one to be given back; false when none was.</summary>
    private bool WaitForSlot()
    {
        long until = Environment.TickCount64 + 1000;
        while (true)
        {
            int taken = Volatile.Read(ref _clients);
            if (taken < MaxClients)
            {
                if (Interlocked.CompareExchange(ref _clients, taken + 1, taken) == taken) return true;
                continue;
            }
            if (Environment.TickCount64 >= until) return false;
            Thread.Sleep(5);
        }
    }

    private void Serve(Socket client)
    {
        try
        {
            using var stream = new NetworkStream(client, ownsSocket: true);
            client.ReceiveTimeout = client.SendTimeout = (int)ClientTimeout.TotalMilliseconds;
            var requestLine = ReadRequestLine(stream);
            lock (_silent) _silent.Remove(client);
            var (status, type, body) = Answer(requestLine);
            var bytes = Encoding.UTF8.GetBytes(body);
            var head = $"HTTP/1.0 {status}\r\nContent-Type: {type}\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n";
            stream.Write(Encoding.ASCII.GetBytes(head));
            stream.Write(bytes);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { }
        catch (Exception e) { Log.Warning(e, "Metrics listener: a request failed"); }
        finally
        {
            lock (_silent) _silent.Remove(client);
            Interlocked.Decrement(ref _clients);
        }
    }

    /// <summary>Reads the request head (bounded, within the timeout) and returns its first line, or "" for a malformed one.</summary>
    private static string ReadRequestLine(NetworkStream stream)
    {
        var head = new byte[MaxHead];
        int length = 0;
        long deadline = Environment.TickCount64 + (long)ClientTimeout.TotalMilliseconds;
        while (length < MaxHead && Environment.TickCount64 < deadline)
        {
            int n = stream.Read(head, length, MaxHead - length);
            if (n == 0) break;
            length += n;
            var text = Encoding.ASCII.GetString(head, 0, length);
            if (text.Contains("\r\n\r\n") || text.Contains("\n\n")) return text[..text.IndexOf('\n')].TrimEnd('\r');
        }
        return "";
    }

    private (string Status, string Type, string Body) Answer(string requestLine)
    {
        var parts = requestLine.Split(' ');
        if (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.")) return ("400 Bad Request", "text/plain", "bad request\n");
        if (parts[0] != "GET") return ("405 Method Not Allowed", "text/plain", "only GET\n");
        var path = parts[1].Split('?')[0];
        var s = _snapshot();
        switch (path)
        {
            case "/metrics":
                return s is null ? ("503 Service Unavailable", "text/plain", "starting\n") : ("200 OK", Exposition.ContentType, Exposition.Render(s));
            case "/ready":
                if (s is { Ready: true }) return ("200 OK", "text/plain", $"ready: generation {s.Generation}, {s.ServingCurrent} of {s.TargetWorkers} workers serving\n");
                return ("503 Service Unavailable", "text/plain", s is null ? "starting\n"
                    : $"not ready: {s.Phase}{(s.Winched ? " (WINCH)" : "")}{(s.Draining ? " (draining: prefork ctl drain)" : "")}, generation {s.Generation}, {s.ServingCurrent} of {s.TargetWorkers} workers serving\n");
            case "/live":
                bool live = s is not null && Environment.TickCount64 - s.PublishedMs < LiveWithin.TotalMilliseconds;
                return live ? ("200 OK", "text/plain", "live\n") : ("503 Service Unavailable", "text/plain", "the master's loop has not turned for 10 s\n");
            default:
                return ("404 Not Found", "text/plain", "try /metrics, /ready or /live\n");
        }
    }

    public void Dispose()
    {
        _accept.Dispose();
        _listener.Dispose();
    }
}
