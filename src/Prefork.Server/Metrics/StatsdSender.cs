using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Prefork.Config;
using Prefork.Control;
using Serilog;

namespace Prefork.Metrics;

/// <summary>
/// `statsd_host`: once a second, the master's snapshot as statsd datagrams (UDP, fire and forget),
/// with Gunicorn's names for what the master knows: PREFIX.requests (a counter: requests since the
/// last send), PREFIX.workers (a gauge), and PREFIX.workers.STATE, PREFIX.worker_exits.REASON and
/// PREFIX.reloads. Per-request timings (Gunicorn's request.duration) are not sent: the workers do
/// not report them.
/// </summary>
public sealed class StatsdSender : IDisposable
{
    private readonly Socket _socket;
    private readonly EndPoint _target;
    private readonly string _prefix;
    private long _nextMs;
    private MasterCounters? _last;
    private bool _failed;

    private StatsdSender(Socket socket, EndPoint target, string prefix)
    {
        _socket = socket;
        _target = target;
        _prefix = prefix.Length == 0 || prefix.EndsWith('.') ? prefix : prefix + ".";
    }

    /// <summary>HOST:PORT (resolved once, now); IOException when it cannot be.</summary>
    public static StatsdSender Open(string hostPort, string prefix)
    {
        var address = ListenAddress.Parse(hostPort);
        EndPoint target;
        try
        {
            target = address.EndPoint is DnsEndPoint dns ? new IPEndPoint(Dns.GetHostAddresses(dns.Host)[0], dns.Port) : address.EndPoint!;
        }
        catch (SocketException e) { throw new IOException($"cannot resolve statsd_host {hostPort}: {e.Message}", e); }
        var socket = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp) { Blocking = false };
        return new StatsdSender(socket, target, prefix);
    }

    /// <summary>Called after each turn of the master's loop; sends at most once a second.</summary>
    public void Tick(StatusSnapshot s)
    {
        long now = Environment.TickCount64;
        if (now < _nextMs) return;
        _nextMs = now + 1000;
        var sb = new StringBuilder();
        var c = s.Counters;
        Line(sb, "requests", c.Requests - (_last?.Requests ?? 0), "c");
        Line(sb, "workers", s.Workers.Count, "g");
        foreach (var state in WorkerStates.All) Line(sb, "workers." + state, s.WorkersByState[state], "g");
        foreach (var (reason, count) in c.ExitsByReason)
            if (count - (_last?.ExitsByReason.GetValueOrDefault(reason) ?? 0) is var more && more > 0) Line(sb, "worker_exits." + reason, more, "c");
        if (c.Reloads - (_last?.Reloads ?? 0) is var reloads && reloads > 0) Line(sb, "reloads", reloads, "c");
        _last = c;
        try
        {
            _socket.SendTo(Encoding.ASCII.GetBytes(sb.ToString().TrimEnd('\n')), _target);
            _failed = false;
        }
        catch (SocketException e)
        {
            if (!_failed) Log.Warning("Could not send to statsd at {Target}: {Error}", _target, e.SocketErrorCode); // once, until it works again
            _failed = true;
        }
    }

    private void Line(StringBuilder sb, string name, long value, string type) =>
        sb.Append(_prefix).Append(name).Append(':').Append(value.ToString(CultureInfo.InvariantCulture)).Append('|').Append(type).Append('\n');

    public void Dispose() => _socket.Dispose();
}
