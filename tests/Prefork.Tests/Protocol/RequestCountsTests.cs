using System.Text;
using Prefork.Protocol;

namespace Prefork.Tests.Protocol;

/// <summary>A heartbeat's per-request counts: the wire format, its bound (PIPE_BUF), and how the master sums them.</summary>
public sealed class RequestCountsTests
{
    private static RequestCounts Sample()
    {
        var c = new RequestCounts { BodyBytes = 1234, RejectedTls = 2, RejectedProxy = 1, ActiveRequests = 3, ActiveConnections = 7 };
        int getOk = RequestCounts.Series(RequestCounts.MethodIndex("GET"), RequestCounts.ClassIndex(200));
        c.Buckets[getOk * RequestCounts.Slots + 0] = 90;
        c.Buckets[getOk * RequestCounts.Slots + 6] = 10;
        c.SumMicros[getOk] = 456_789;
        int otherError = RequestCounts.Series(RequestCounts.MethodIndex("BREW"), RequestCounts.ClassIndex(503));
        c.Buckets[otherError * RequestCounts.Slots + RequestCounts.Slots - 1] = 1; // over 10 s: +Inf
        c.SumMicros[otherError] = 12_000_000;
        return c;
    }

    [Fact]
    public void Counts_survive_a_heartbeat_line_and_only_series_with_requests_are_sent()
    {
        var beat = new WorkerMessage.Heartbeat(101, -1, Counts: Sample());
        var line = beat.Format();
        Assert.Equal("heartbeat requests=101 busy_ms=-1 active=3 conns=7 body_bytes=1234 rejected_tls=2 rejected_proxy=1 " +
                     "d.GET.2xx=456789/90,0,0,0,0,0,10 d._OTHER.5xx=12000000/0,0,0,0,0,0,0,0,0,0,0,0,0,0,1", line);
        var parsed = Assert.IsType<WorkerMessage.Heartbeat>(WorkerMessage.TryParse(line));
        var master = new RequestCounts();
        master.Update(parsed.Counts!);
        Assert.Equal(Sample().Buckets, master.Buckets);
        Assert.Equal(Sample().SumMicros, master.SumMicros);
        Assert.Equal((1234, 2, 1, 3, 7), (master.BodyBytes, master.RejectedTls, master.RejectedProxy, master.ActiveRequests, master.ActiveConnections));
        Assert.Equal(100, master.Count(RequestCounts.Series(0, 1)));
    }

    [Fact]
    public void Every_series_busy_with_huge_counts_still_fits_under_PIPE_BUF_and_goes_round_over_several_heartbeats()
    {
        var full = new RequestCounts();
        for (int i = 0; i < full.Buckets.Length; i++) full.Buckets[i] = long.MaxValue / 100;
        for (int i = 0; i < full.SumMicros.Length; i++) full.SumMicros[i] = long.MaxValue / 100;
        var master = new RequestCounts();
        int from = 0;
        for (int beats = 0; beats < 6; beats++)
        {
            var beat = new WorkerMessage.Heartbeat(1, 5, "GET", new string('\u65e5', WorkerMessage.MaxPathLength), full, from);
            int bytes = Encoding.UTF8.GetByteCount(beat.Format()) + 1;
            Assert.True(bytes < WorkerMessage.MaxLineBytes, $"{bytes} bytes");
            master.Update(((WorkerMessage.Heartbeat)WorkerMessage.TryParse(beat.Format())!).Counts!);
            from = beat.NextCountsFrom();
            Assert.NotEqual(0, from); // too much for one line: the next starts where this one stopped
        }
        Assert.Equal(full.Buckets, master.Buckets); // in six heartbeats every series arrived, none lost
        Assert.Equal(full.SumMicros, master.SumMicros);
    }

    [Fact]
    public void Unknown_or_malformed_count_fields_are_ignored_and_the_heartbeat_still_counts()
    {
        var beat = Assert.IsType<WorkerMessage.Heartbeat>(WorkerMessage.TryParse(
            "heartbeat requests=5 busy_ms=-1 future=1 d.GET.2xx=oops d.GOT.2xx=1/1 d.GET.9xx=1/1 d.GET.2xx=10/1,2 conns=x"));
        Assert.Equal(5, beat.Requests);
        var master = new RequestCounts();
        master.Update(beat.Counts!);
        Assert.Equal(3, master.Count(RequestCounts.Series(0, 1)));
        Assert.Equal(3, master.Buckets.Sum());
    }

    [Fact]
    public void Exited_workers_leave_their_counters_but_not_their_gauges()
    {
        var left = Sample().CountersOnly();
        Assert.Equal((0L, 0L), (left.ActiveRequests, left.ActiveConnections));
        Assert.Equal(1234, left.BodyBytes);
        var total = new RequestCounts();
        total.Add(left);
        total.Add(Sample());
        Assert.Equal(200, total.Count(RequestCounts.Series(0, 1)));
        Assert.Equal(3, total.ActiveRequests);
    }

    [Theory]
    [InlineData("GET", 0)]
    [InlineData("TRACE", 8)]
    [InlineData("get", 9)]
    [InlineData("PROPFIND", 9)]
    public void Methods_outside_OpenTelemetrys_list_are_OTHER(string method, int index) => Assert.Equal(index, RequestCounts.MethodIndex(method));

    [Theory]
    [InlineData(101, "1xx")]
    [InlineData(204, "2xx")]
    [InlineData(304, "3xx")]
    [InlineData(499, "4xx")]
    [InlineData(599, "5xx")]
    [InlineData(0, "5xx")]
    public void Statuses_fall_in_their_class(int status, string name) => Assert.Equal(name, RequestCounts.Classes[RequestCounts.ClassIndex(status)]);
}
