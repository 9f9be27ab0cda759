using Prefork.AspNetCore;

namespace Prefork.Tests.AspNetCore;

public sealed class RequestTrackerTests
{
    [Fact]
    public void Reports_the_oldest_request_in_flight_and_counts_those_that_end()
    {
        var tracker = new RequestTracker();
        Assert.Equal((-1, "", ""), tracker.Oldest());
        var first = tracker.Begin("GET", "/first");
        Thread.Sleep(5); // two distinct start times (the tracker uses Stopwatch timestamps)
        var second = tracker.Begin("POST", "/second");
        var (busy, method, path) = tracker.Oldest();
        Assert.True(busy >= 5, $"busy {busy} ms");
        Assert.Equal(("GET", "/first"), (method, path));

        tracker.End(first);
        Assert.Equal(("POST", "/second"), (tracker.Oldest().Method, tracker.Oldest().Path));
        Assert.Equal(1, tracker.Served);
        tracker.End(second);
        tracker.Count(); // an upgrade
        Assert.Equal((-1, "", ""), tracker.Oldest());
        Assert.Equal(3, tracker.Served);
    }

    [Fact]
    public void Keeps_every_request_when_more_are_in_flight_than_it_has_slots()
    {
        var tracker = new RequestTracker();
        var oldest = tracker.Begin("GET", "/oldest");
        Thread.Sleep(5);
        var slots = Enumerable.Range(0, 1000).Select(i => tracker.Begin("GET", "/" + i)).ToList(); // grows past 64 slots
        Assert.Equal("/oldest", tracker.Oldest().Path);
        tracker.End(oldest);
        Assert.DoesNotContain(tracker.Oldest().Path, new[] { "/oldest", "" });
        foreach (var slot in slots) tracker.End(slot);
        Assert.Equal(1001, tracker.Served);
        Assert.Equal(-1, tracker.Oldest().BusyMs);
    }

    [Fact]
    public void Tracking_a_request_allocates_nothing()
    {
        var tracker = new RequestTracker();
        tracker.End(tracker.Begin("GET", "/warm-up"));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) tracker.End(tracker.Begin("GET", "/path"));
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Concurrent_requests_are_all_counted_and_all_released()
    {
        var tracker = new RequestTracker();
        Parallel.For(0, 8, _ =>
        {
            for (int i = 0; i < 20_000; i++) tracker.End(tracker.Begin("GET", "/"));
        });
        Assert.Equal(160_000, tracker.Served);
        Assert.Equal(-1, tracker.Oldest().BusyMs);
    }

    [Fact]
    public void The_heartbeat_says_watchdog_requests_and_the_request_in_flight_on_one_line_each()
    {
        Assert.Equal("WATCHDOG=1\nPREFORK_REQUESTS=12\nPREFORK_BUSY_MS=-1", MasterLink.Format(true, 12, (-1, "", "")));
        Assert.Equal("PREFORK_REQUESTS=12\nPREFORK_BUSY_MS=340\nPREFORK_METHOD=GET\nPREFORK_PATH=/slow",
            MasterLink.Format(false, 12, (340, "GET", "/slow")));
        // A decoded path may hold a newline (%0A); and the master takes at most 200 characters.
        var beat = MasterLink.Format(false, 1, (5, "GET", "/a\nPREFORK_REQUESTS=0\r/" + new string('x', 300)));
        var path = beat.Split('\n').Single(l => l.StartsWith("PREFORK_PATH="))["PREFORK_PATH=".Length..];
        Assert.Equal(MasterLink.MaxPathLength, path.Length);
        Assert.StartsWith("/a?PREFORK_REQUESTS=0?/xxx", path);
        Assert.Equal(4, beat.Split('\n').Length);
    }
}
