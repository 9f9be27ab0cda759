using System.Globalization;
using System.Text;

namespace Prefork.Protocol;

/// <summary>
/// Per-request counts of one worker (or, in the master, of all of them): a duration histogram per
/// (method, status class), response body bytes, refused connections, and two gauges (requests and
/// connections open now). The layout is fixed, so a worker counts into plain arrays with Interlocked
/// and nothing per request allocates or locks; the label set is bounded (10 methods × 5 classes).
/// Method and class names are OpenTelemetry's (http.request.method, with unknown methods as _OTHER).
/// </summary>
public sealed class RequestCounts
{
    /// <summary>OpenTelemetry's known HTTP methods; any other is counted as _OTHER.</summary>
    public static readonly string[] Methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "_OTHER"];
    public static readonly string[] Classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    /// <summary>Upper bounds (seconds) of the duration buckets: OpenTelemetry's advice for http.server.request.duration.</summary>
    public static readonly double[] Bounds = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
    /// <summary>Buckets per series: one per bound, then the one above the last (+Inf).</summary>
    public static readonly int Slots = Bounds.Length + 1;
    public static readonly int SeriesCount = Methods.Length * Classes.Length;

    /// <summary>Per series, per bucket: requests whose duration fell in it (not cumulative).</summary>
    public readonly long[] Buckets = new long[SeriesCount * Slots];
    /// <summary>Per series: the durations' sum in microseconds.</summary>
    public readonly long[] SumMicros = new long[SeriesCount];
    public long BodyBytes;
    /// <summary>Connections closed without an answer: a failed TLS handshake, a PROXY header refused.</summary>
    public long RejectedTls, RejectedProxy;
    /// <summary>Gauges: requests being served, connections open (at the worker's last heartbeat).</summary>
    public long ActiveRequests, ActiveConnections;

    public static int MethodIndex(string method) => method switch
    {
        "GET" => 0, "HEAD" => 1, "POST" => 2, "PUT" => 3, "DELETE" => 4, "PATCH" => 5, "OPTIONS" => 6, "CONNECT" => 7, "TRACE" => 8, _ => 9,
    };

    /// <summary>1xx..5xx; a status out of range (none is sent) counts as 5xx.</summary>
    public static int ClassIndex(int status) => status is >= 100 and < 600 ? status / 100 - 1 : 4;

    public static int Series(int method, int statusClass) => method * Classes.Length + statusClass;

    /// <summary>Requests of one series (the sum of its buckets).</summary>
    public long Count(int series)
    {
        long n = 0;
        for (int b = 0; b < Slots; b++) n += Buckets[series * Slots + b];
        return n;
    }

    /// <summary>Adds <paramref name="other"/>'s counters and gauges to these (the master's sums).</summary>
    public void Add(RequestCounts other)
    {
        for (int i = 0; i < Buckets.Length; i++) Buckets[i] += other.Buckets[i];
        for (int i = 0; i < SumMicros.Length; i++) SumMicros[i] += other.SumMicros[i];
        BodyBytes += other.BodyBytes;
        RejectedTls += other.RejectedTls;
        RejectedProxy += other.RejectedProxy;
        ActiveRequests += other.ActiveRequests;
        ActiveConnections += other.ActiveConnections;
    }

    /// <summary>Counters only (gauges zeroed): what a worker that exited leaves to the totals.</summary>
    public RequestCounts CountersOnly()
    {
        var copy = new RequestCounts();
        copy.Add(this);
        copy.ActiveRequests = copy.ActiveConnections = 0;
        return copy;
    }

    // ---- on the wire: heartbeat fields -------------------------------------------------------------
    //   active=N conns=N body_bytes=N rejected_tls=N rejected_proxy=N d.GET.2xx=SUM_US/B0,B1,...
    // Every value is cumulative over the worker's life, so a series left out of one heartbeat (to stay
    // under PIPE_BUF) loses nothing: the next one that carries it brings it up to date. A series's
    // buckets stop at its last non-zero one.

    /// <summary>
    /// Appends the fields (each after a space), series with requests only, starting at series
    /// <paramref name="from"/> and going round, while the text stays within <paramref name="budget"/>
    /// characters. Returns the series to start from next time.
    /// </summary>
    public int AppendFields(StringBuilder sb, int from, int budget)
    {
        int start = sb.Length;
        sb.Append(CultureInfo.InvariantCulture, $" active={ActiveRequests} conns={ActiveConnections} body_bytes={BodyBytes} rejected_tls={RejectedTls} rejected_proxy={RejectedProxy}");
        var field = new StringBuilder(256);
        for (int k = 0; k < SeriesCount; k++)
        {
            int s = (from + k) % SeriesCount;
            int last = Slots - 1;
            while (last >= 0 && Buckets[s * Slots + last] == 0) last--;
            if (last < 0) continue;
            field.Clear().Append(" d.").Append(Methods[s / Classes.Length]).Append('.').Append(Classes[s % Classes.Length])
                 .Append('=').Append(SumMicros[s].ToString(CultureInfo.InvariantCulture)).Append('/');
            for (int b = 0; b <= last; b++)
            {
                if (b > 0) field.Append(',');
                field.Append(Buckets[s * Slots + b].ToString(CultureInfo.InvariantCulture));
            }
            if (sb.Length - start + field.Length > budget) return s; // the rest next time, from here
            sb.Append(field);
        }
        return from;
    }

    /// <summary>Takes one heartbeat field if it is one of these; false for a key this does not know (or a malformed value).</summary>
    public bool TryTakeField(string key, string value)
    {
        switch (key)
        {
            case "active": return TryNumber(value, out ActiveRequests);
            case "conns": return TryNumber(value, out ActiveConnections);
            case "body_bytes": return TryNumber(value, out BodyBytes);
            case "rejected_tls": return TryNumber(value, out RejectedTls);
            case "rejected_proxy": return TryNumber(value, out RejectedProxy);
        }
        if (!key.StartsWith("d.", StringComparison.Ordinal)) return false;
        var parts = key.Split('.');
        int method = parts.Length == 3 ? Array.IndexOf(Methods, parts[1]) : -1;
        int statusClass = parts.Length == 3 ? Array.IndexOf(Classes, parts[2]) : -1;
        int slash = value.IndexOf('/');
        if (method < 0 || statusClass < 0 || slash <= 0 || !TryNumber(value[..slash], out long sum)) return false;
        var buckets = value[(slash + 1)..].Split(',');
        if (buckets.Length > Slots) return false;
        var counts = new long[Slots];
        for (int b = 0; b < buckets.Length; b++)
            if (!TryNumber(buckets[b], out counts[b])) return false;
        int s = Series(method, statusClass);
        SumMicros[s] = sum;
        counts.CopyTo(Buckets, s * Slots);
        Reported ??= new bool[SeriesCount];
        Reported[s] = true;
        return true;
    }

    /// <summary>Parsed from a heartbeat: which series it carried (the others keep their earlier values). Null: none.</summary>
    public bool[]? Reported { get; private set; }

    /// <summary>Brings these (a worker's last known counts, in the master) up to date with a heartbeat's.</summary>
    public void Update(RequestCounts beat)
    {
        ActiveRequests = beat.ActiveRequests;
        ActiveConnections = beat.ActiveConnections;
        BodyBytes = beat.BodyBytes;
        RejectedTls = beat.RejectedTls;
        RejectedProxy = beat.RejectedProxy;
        if (beat.Reported is not { } reported) return;
        for (int s = 0; s < SeriesCount; s++)
        {
            if (!reported[s]) continue;
            SumMicros[s] = beat.SumMicros[s];
            Array.Copy(beat.Buckets, s * Slots, Buckets, s * Slots, Slots);
        }
    }

    private static bool TryNumber(string text, out long value) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
}
