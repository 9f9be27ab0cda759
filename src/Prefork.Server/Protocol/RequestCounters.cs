using System.Diagnostics;

namespace Prefork.Protocol;

/// <summary>
/// This worker process's per-request counters, for its heartbeat (<see cref="RequestCounts"/>): one
/// Interlocked add per counter into fixed arrays, so counting allocates nothing and takes no lock
/// whichever thread serves. Process-wide because a worker is one process: the connections count
/// themselves where they open and close, the request handler where a response is done.
/// </summary>
public static class RequestCounters
{
    private static readonly RequestCounts Counts = new();
    /// <summary>Each bucket's upper bound in Stopwatch ticks: a duration's bucket is found without floating point.</summary>
    private static readonly long[] BoundTicks = RequestCounts.Bounds.Select(s => (long)(s * Stopwatch.Frequency)).ToArray();
    private static long _opened, _closed, _rejectedProxy;

    /// <summary>A response is done (written, or failed as a 500): its method, status, body bytes and duration are counted.</summary>
    public static void Completed(string method, int status, long bodyBytes, long startedTimestamp)
    {
        long ticks = Stopwatch.GetTimestamp() - startedTimestamp;
        int bucket = 0;
        while (bucket < BoundTicks.Length && ticks > BoundTicks[bucket]) bucket++;
        int series = RequestCounts.Series(RequestCounts.MethodIndex(method), RequestCounts.ClassIndex(status));
        Interlocked.Increment(ref Counts.Buckets[series * RequestCounts.Slots + bucket]);
        Interlocked.Add(ref Counts.SumMicros[series], ticks * 1_000_000 / Stopwatch.Frequency);
        Interlocked.Add(ref Counts.BodyBytes, bodyBytes);
    }

    public static void ConnectionOpened() => Interlocked.Increment(ref _opened);
    public static void ConnectionClosed() => Interlocked.Increment(ref _closed);
    /// <summary>A PROXY header was refused (from an address not in proxy_allow_ips, or malformed): the connection closes unserved.</summary>
    public static void ProxyRefused() => Interlocked.Increment(ref _rejectedProxy);

    /// <summary>Copies the counters into <paramref name="copy"/> (the heartbeat's own, reused each second), with the gauges of now.</summary>
    public static RequestCounts Snapshot(RequestCounts copy, long activeRequests, long tlsHandshakeFailures)
    {
        for (int i = 0; i < copy.Buckets.Length; i++) copy.Buckets[i] = Interlocked.Read(ref Counts.Buckets[i]);
        for (int i = 0; i < copy.SumMicros.Length; i++) copy.SumMicros[i] = Interlocked.Read(ref Counts.SumMicros[i]);
        copy.BodyBytes = Interlocked.Read(ref Counts.BodyBytes);
        copy.RejectedProxy = Interlocked.Read(ref _rejectedProxy);
        copy.RejectedTls = tlsHandshakeFailures;
        copy.ActiveRequests = activeRequests;
        long closed = Interlocked.Read(ref _closed); // first: then opened >= closed
        copy.ActiveConnections = Interlocked.Read(ref _opened) - closed;
        return copy;
    }
}
