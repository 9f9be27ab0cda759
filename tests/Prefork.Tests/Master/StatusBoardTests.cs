using Prefork.Config;
using Prefork.Control;
using Prefork.Master;

namespace Prefork.Tests.Master;

/// <summary>The master's snapshot: counters that survive worker replacement, readiness, and how an exit is labelled.</summary>
public sealed class StatusBoardTests
{
    private readonly ManualClock _clock = new();
    private readonly GatewayConfig _config = ConfigLoader.Load(null, [new("workers", "2")]);

    private WorkerHandle Worker(int pid, int index, int generation = 1, bool booted = true) => new()
    {
        Pid = pid, Index = index, Generation = generation, PipeFd = -1, SpawnedAt = _clock.GetTimestamp(), LastHeard = _clock.GetTimestamp(), Booted = booted,
    };

    [Fact]
    public void The_request_total_keeps_what_retired_workers_served()
    {
        var board = new StatusBoard(_clock);
        var a = Worker(-10, 0);
        var b = Worker(-11, 1);
        a.OnHeartbeat(new(Requests: 40, BusyMs: -1), _clock.GetTimestamp());
        b.OnHeartbeat(new(Requests: 2, BusyMs: 1500, "GET", "/slow"), _clock.GetTimestamp());
        var first = board.Publish(_config, 1, "serving", false, 2, [a, b], []);
        Assert.Equal(42, first.Counters.Requests);
        Assert.True(first.Ready);
        Assert.Equal(("GET /slow", 1.5), (first.Workers[1].BusyRequest, first.Workers[1].BusySeconds));

        // a is replaced by c, which has served 1 so far: the total goes on from 42, it does not fall to 3.
        Assert.True(a.Retire(_clock.GetTimestamp()));
        board.Exited(a, board.ExitReason(a, Ending.Retired, 2, stopping: false));
        var c = Worker(-12, 0, generation: 2, booted: false);
        var second = board.Publish(_config, 2, "reloading", false, 2, [b, c], []);
        Assert.Equal(42, second.Counters.Requests);
        Assert.False(second.Ready); // generation 2 is not at full strength
        Assert.Equal(1, second.Counters.ExitsByReason["reload"]);
        c.OnHeartbeat(new(Requests: 1, BusyMs: -1), _clock.GetTimestamp());
        Assert.Equal(43, board.Publish(_config, 2, "reloading", false, 2, [b, c], []).Counters.Requests);
        Assert.Same(board.Current, board.Current); // one immutable snapshot per turn
    }

    [Theory]
    [InlineData("served 10 requests (max_requests 10)", "max_requests")]
    [InlineData("older than max_worker_age (60 s)", "age")]
    [InlineData("resident memory 300 MiB over max_worker_memory (200 MiB)", "memory")]
    [InlineData("asked by prefork ctl", "ctl")]
    public void A_recycled_worker_exit_is_labelled_by_its_rule(string reason, string label) =>
        Assert.Equal(label, StatusBoard.RecycleLabel(reason));

    [Fact]
    public void Exits_are_labelled_by_how_they_happened()
    {
        var board = new StatusBoard(_clock);
        var w = Worker(-20, 0);
        Assert.Equal("crash", board.ExitReason(w, Ending.Died, 1, false));
        Assert.Equal("signal", board.ExitReason(w, Ending.KilledByOthers, 1, false));
        Assert.Equal("shutdown", board.ExitReason(w, Ending.Retired, 1, true));
        Assert.Equal("scale", board.ExitReason(w, Ending.Retired, 1, false));
        board.EndingBecause(w, "ctl");
        Assert.Equal("ctl", board.ExitReason(w, Ending.Retired, 1, false));
        var hung = Worker(-21, 1);
        hung.Condemn(_clock.GetTimestamp(), abort: true);
        Assert.Equal("timeout", board.ExitReason(hung, Ending.Died, 1, false));
    }

    [Fact]
    public void A_retirement_is_labelled_when_it_is_decided_not_when_the_worker_exits()
    {
        var board = new StatusBoard(_clock);
        var w = Worker(-30, 0, generation: 1);
        board.Retiring(w, generation: 1); // WINCH or fewer workers: generation 1 is current
        Assert.Equal("scale", board.ExitReason(w, Ending.Retired, generation: 2, stopping: false)); // it exits after a HUP
    }
}
