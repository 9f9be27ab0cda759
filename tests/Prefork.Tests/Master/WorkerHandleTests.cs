using Mono.Unix.Native;
using Prefork.Master;
using Prefork.Protocol;

namespace Prefork.Tests.Master;

/// <summary>A worker's life as its handle keeps it: the transitions, the signals they make due, and the ones refused.</summary>
public sealed class WorkerHandleTests
{
    private static readonly TimeSpan Epsilon = TimeSpan.FromMilliseconds(10);
    private readonly ManualClock _clock = new();

    private WorkerHandle Worker(bool booted = false) => new()
    {
        Pid = 1000, Index = 0, Generation = 1, PipeFd = -1, SpawnedAt = _clock.GetTimestamp(), LastHeard = _clock.GetTimestamp(), Booted = booted,
    };

    private long In(double seconds) => _clock.After(TimeSpan.FromSeconds(seconds));

    [Fact]
    public void A_worker_boots_once_and_a_second_ready_is_ignored()
    {
        var w = Worker();
        Assert.Equal(WorkerState.Booting, w.State);
        _clock.Advance(TimeSpan.FromSeconds(3));
        Assert.True(w.OnReady(_clock.GetTimestamp()));
        Assert.Equal(WorkerState.Serving, w.State);
        Assert.True(w.Booted);
        Assert.Equal(_clock.GetTimestamp(), w.LastHeard);
        Assert.False(w.OnReady(_clock.GetTimestamp())); // nothing to announce, no second worker_boot hook
        Assert.Equal(WorkerState.Serving, w.State);
    }

    [Fact]
    public void A_heartbeat_updates_what_it_does_and_when_it_was_heard()
    {
        var w = Worker(booted: true);
        _clock.Advance(TimeSpan.FromSeconds(1));
        w.OnHeartbeat(new(Requests: 12, BusyMs: 340, "GET", "/slow"), _clock.GetTimestamp());
        Assert.Equal((12L, 340L, "GET /slow", _clock.GetTimestamp()), (w.Requests, w.BusyMs, w.BusyRequest, w.LastHeard));
        w.OnHeartbeat(new(Requests: 13, BusyMs: -1), _clock.GetTimestamp());
        Assert.Equal((13L, -1L, ""), (w.Requests, w.BusyMs, w.BusyRequest));
    }

    [Fact]
    public void A_boot_failure_reason_is_kept_only_before_booting_and_the_first_one_stands()
    {
        var w = Worker();
        w.BootFailed("app not found");
        w.BootFailed("did not report ready within worker_boot_timeout (60 s)");
        Assert.Equal("app not found", w.BootFailure);

        var booted = Worker(booted: true);
        booted.BootFailed("late");
        Assert.Null(booted.BootFailure);
    }

    [Fact]
    public void Only_a_serving_worker_is_recycled()
    {
        var booting = Worker();
        Assert.False(booting.Recycle("max_requests"));
        Assert.Equal(WorkerState.Booting, booting.State);

        var w = Worker(booted: true);
        Assert.True(w.Recycle("served 50 requests (max_requests 50)"));
        Assert.Equal(WorkerState.Recycling, w.State);
        Assert.False(w.Recycle("older than max_worker_age (100 s)")); // the first reason stands
        Assert.Equal("served 50 requests (max_requests 50)", w.RecycleReason);
    }

    [Fact]
    public void Retiring_sends_TERM_once_then_KILL_exactly_at_the_deadline_then_nothing()
    {
        var w = Worker(booted: true);
        w.Recycle("max_requests");
        Assert.True(w.Retire(In(30)));
        Assert.Equal(WorkerState.Retiring, w.State);
        Assert.False(w.Retire(In(30))); // no second TERM, and the deadline is not pushed back
        Assert.False(w.Condemn(In(2), abort: true)); // its own KILL is due already
        Assert.False(w.Recycle("age"));

        _clock.Advance(TimeSpan.FromSeconds(30) - Epsilon);
        Assert.Null(w.SignalDue(_clock.GetTimestamp()));
        _clock.Advance(Epsilon);
        Assert.Equal(Signum.SIGKILL, w.SignalDue(_clock.GetTimestamp()));
        Assert.Null(w.SignalDue(_clock.GetTimestamp()));
        _clock.Advance(TimeSpan.FromHours(1));
        Assert.Null(w.SignalDue(_clock.GetTimestamp()));
        Assert.Equal(WorkerState.Retiring, w.State);
    }

    [Fact]
    public void A_worker_condemned_for_a_timeout_gets_ABRT_again_until_its_KILL_is_due()
    {
        var w = Worker(booted: true);
        Assert.True(w.Condemn(In(2), abort: true));
        Assert.Equal(WorkerState.Condemned, w.State);
        Assert.False(w.Condemn(In(2), abort: true));
        Assert.False(w.Retire(In(30))); // no TERM to a worker being killed: WINCH, TTOU or a stop leave it be

        _clock.Advance(TimeSpan.FromSeconds(2) - Epsilon);
        Assert.Equal(Signum.SIGABRT, w.SignalDue(_clock.GetTimestamp()));
        Assert.Equal(Signum.SIGABRT, w.SignalDue(_clock.GetTimestamp()));
        _clock.Advance(Epsilon);
        Assert.Equal(Signum.SIGKILL, w.SignalDue(_clock.GetTimestamp()));
        _clock.Advance(TimeSpan.FromHours(1));
        Assert.Null(w.SignalDue(_clock.GetTimestamp())); // KILL sent: nothing more to do but wait for the exit
    }

    [Fact]
    public void A_worker_condemned_while_booting_is_killed_and_killed_again_after_the_grace()
    {
        var w = Worker();
        Assert.True(w.Condemn(In(2), abort: false));
        Assert.Null(w.SignalDue(_clock.GetTimestamp()));
        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(Signum.SIGKILL, w.SignalDue(_clock.GetTimestamp()));
        Assert.True(w.OnReady(_clock.GetTimestamp())); // a ready too late changes nothing: it stays condemned
        Assert.Equal(WorkerState.Condemned, w.State);
    }

    [Fact]
    public void A_booting_worker_can_retire_and_still_report_ready()
    {
        var w = Worker();
        Assert.True(w.Retire(In(30)));
        Assert.True(w.OnReady(_clock.GetTimestamp()));
        Assert.Equal(WorkerState.Retiring, w.State);
        Assert.True(w.Booted);
    }

    [Fact]
    public void An_adopted_worker_starts_serving_or_booting_as_it_was()
    {
        Assert.Equal(WorkerState.Serving, Worker(booted: true).State);
        Assert.Equal(WorkerState.Booting, Worker(booted: false).State);
    }
}
