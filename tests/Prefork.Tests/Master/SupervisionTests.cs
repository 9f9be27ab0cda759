using Prefork.Config;
using Prefork.Master;

namespace Prefork.Tests.Master;

/// <summary>The master's decisions, on a clock the test moves (see <see cref="ManualClock"/>): no process, no wait.</summary>
public sealed class SupervisionTests
{
    private static readonly TimeSpan Epsilon = TimeSpan.FromMilliseconds(10);
    private readonly ManualClock _clock = new();
    private readonly Supervision _supervision;

    public SupervisionTests() => _supervision = new Supervision(_clock);

    private static GatewayConfig Config(params (string Key, string Value)[] settings) =>
        ConfigLoader.Load(null, settings.Select(s => new KeyValuePair<string, string>(s.Key, s.Value)));

    private WorkerHandle Worker(int index = 0, int generation = 1, bool booted = true) => new()
    {
        Pid = 1000 + index, Index = index, Generation = generation, PipeFd = -1,
        SpawnedAt = _clock.GetTimestamp(), LastHeard = _clock.GetTimestamp(), Booted = booted,
    };

    private static TimeSpan Seconds(double s) => TimeSpan.FromSeconds(s);

    // ---- timeout ---------------------------------------------------------------------------

    [Fact]
    public void A_worker_is_hung_only_once_silent_for_longer_than_timeout()
    {
        var config = Config(("timeout", "10"));
        var w = Worker();
        _clock.Advance(Seconds(10) - Epsilon);
        Assert.Equal(Verdict.Spare, _supervision.Judge(w, config).Verdict);
        _clock.Advance(2 * Epsilon);
        var judgement = _supervision.Judge(w, config);
        Assert.Equal(Verdict.SilentTimedOut, judgement.Verdict);
        Assert.Equal(10.01, judgement.Seconds, precision: 6);
    }

    [Fact]
    public void A_heartbeat_restarts_the_timeout()
    {
        var config = Config(("timeout", "10"));
        var w = Worker();
        _clock.Advance(Seconds(9));
        w.OnHeartbeat(new(Requests: 3, BusyMs: -1), _clock.GetTimestamp());
        _clock.Advance(Seconds(9));
        Assert.Equal(Verdict.Spare, _supervision.Judge(w, config).Verdict);
    }

    [Fact]
    public void A_wall_clock_step_forward_condemns_no_one_and_a_step_back_does_not_disable_timeouts()
    {
        var config = Config(("timeout", "10"), ("max_worker_age", "3600"));
        var serving = Worker(0);
        var booting = Worker(1, booted: false);
        _clock.StepWall(TimeSpan.FromDays(1)); // NTP fixing a dead RTC, an operator's `date -s`
        _clock.Advance(Seconds(1));
        Assert.Equal(Verdict.Spare, _supervision.Judge(serving, config).Verdict);
        Assert.Equal(Verdict.Spare, _supervision.Judge(booting, config).Verdict);
        Assert.Null(_supervision.RecycleReason(serving, config, _ => 0));

        _clock.StepWall(-TimeSpan.FromDays(2)); // and back, past where it started
        _clock.Advance(Seconds(10));
        Assert.Equal(Verdict.SilentTimedOut, _supervision.Judge(serving, config).Verdict);
    }

    [Fact]
    public void A_request_running_longer_than_timeout_is_hung_even_while_the_worker_pings()
    {
        var config = Config(("timeout", "10"));
        var w = Worker();
        w.OnHeartbeat(new(Requests: 0, BusyMs: 9_500, "GET", "/slow"), _clock.GetTimestamp()); // the request had run 9.5 s
        _clock.Advance(Seconds(0.5) - Epsilon);
        Assert.Equal(Verdict.Spare, _supervision.Judge(w, config).Verdict);
        _clock.Advance(2 * Epsilon);
        var judgement = _supervision.Judge(w, config);
        Assert.Equal(Verdict.RequestTimedOut, judgement.Verdict);
        Assert.Equal(10.01, judgement.Seconds, precision: 6);
    }

    [Fact]
    public void Timeout_0_disables_it_and_a_retiring_or_condemned_worker_is_not_judged()
    {
        var w = Worker();
        _clock.Advance(TimeSpan.FromDays(1));
        Assert.Equal(Verdict.Spare, _supervision.Judge(w, Config(("timeout", "0"))).Verdict);

        var retiring = Worker();
        var booting = Worker(booted: false);
        var condemned = Worker();
        Assert.True(retiring.Retire(_clock.After(Seconds(30))));
        Assert.True(booting.Retire(_clock.After(Seconds(30))));
        Assert.True(condemned.Condemn(_clock.After(Supervision.AbortGrace), abort: true));
        _clock.Advance(TimeSpan.FromDays(1)); // its KILL is the handle's to say (WorkerHandleTests)
        foreach (var gone in new[] { retiring, booting, condemned })
            Assert.Equal(Verdict.Spare, _supervision.Judge(gone, Config(("timeout", "10"), ("worker_boot_timeout", "5"))).Verdict);
    }

    // ---- booting ---------------------------------------------------------------------------

    [Fact]
    public void Worker_boot_timeout_applies_while_booting_and_timeout_does_not()
    {
        var config = Config(("timeout", "5"), ("worker_boot_timeout", "60"));
        var w = Worker(booted: false);
        _clock.Advance(Seconds(60) - Epsilon); // long past timeout: loading an app may be slow and silent
        Assert.Equal(Verdict.Spare, _supervision.Judge(w, config).Verdict);
        _clock.Advance(2 * Epsilon);
        Assert.Equal(Verdict.BootTimedOut, _supervision.Judge(w, config).Verdict);
    }

    [Fact]
    public void Once_booted_a_worker_is_past_worker_boot_timeout_without_consequence()
    {
        var config = Config(("timeout", "30"), ("worker_boot_timeout", "5"));
        var w = Worker(booted: false);
        _clock.Advance(Seconds(4));
        Assert.True(w.OnReady(_clock.GetTimestamp()));
        _clock.Advance(Seconds(20));
        Assert.Equal(Verdict.Spare, _supervision.Judge(w, config).Verdict);
    }

    // ---- recycling ---------------------------------------------------------------------------

    [Fact]
    public void Max_worker_age_recycles_a_worker_only_once_it_is_older()
    {
        var config = Config(("max_worker_age", "100"));
        var w = Worker();
        _clock.Advance(Seconds(100) - Epsilon);
        Assert.Null(_supervision.RecycleReason(w, config, _ => 0));
        _clock.Advance(2 * Epsilon);
        Assert.Equal("older than max_worker_age (100 s)", _supervision.RecycleReason(w, config, _ => 0));
    }

    [Fact]
    public void Max_requests_and_max_worker_memory_recycle_and_memory_is_read_only_when_needed()
    {
        var config = Config(("max_worker_memory", "200"));
        int reads = 0;
        long Rss(int pid) { reads++; return 250; }

        var spent = new WorkerHandle { Pid = 1, Index = 0, Generation = 1, PipeFd = -1, SpawnedAt = 0, LastHeard = 0, Booted = true, MaxRequests = 50 };
        spent.OnHeartbeat(new(Requests: 50, BusyMs: -1), 0);
        Assert.Equal("served 50 requests (max_requests 50)", _supervision.RecycleReason(spent, config, Rss));
        Assert.Equal(0, reads);

        var big = Worker();
        Assert.Equal("resident memory 250 MiB over max_worker_memory (200 MiB)", _supervision.RecycleReason(big, config, Rss));
        Assert.Equal(1, reads);

        var booting = Worker(booted: false);
        var marked = Worker();
        marked.Recycle("older than max_worker_age (100 s)");
        Assert.Null(_supervision.RecycleReason(booting, config, Rss));
        Assert.Null(_supervision.RecycleReason(marked, config, Rss));
        Assert.Equal(1, reads);
    }

    // ---- reaching the target -------------------------------------------------------------------

    [Fact]
    public void With_no_workers_every_index_needs_one_and_nothing_is_ready()
    {
        var plan = Supervision.PlanWorkers([], targetWorkers: 3, winched: false, generation: 1);
        Assert.Equal(new[] { 0, 1, 2 }, plan.Spawn);
        Assert.Empty(plan.Retire);
        Assert.False(plan.AllReady);
    }

    [Fact]
    public void A_new_generation_replaces_the_old_only_once_it_has_booted()
    {
        var old = Worker(0, generation: 1);
        var plan = Supervision.PlanWorkers([old], 1, false, generation: 2);
        Assert.Equal(new[] { 0 }, plan.Spawn);
        Assert.Empty(plan.Retire);

        var fresh = Worker(0, generation: 2, booted: false);
        plan = Supervision.PlanWorkers([old, fresh], 1, false, 2);
        Assert.Empty(plan.Spawn);
        Assert.Empty(plan.Retire); // capacity never dips
        Assert.False(plan.AllReady);

        fresh.OnReady(_clock.GetTimestamp());
        plan = Supervision.PlanWorkers([old, fresh], 1, false, 2);
        Assert.Equal(new[] { (old, "replaced by generation 2") }, plan.Retire);
        Assert.True(plan.AllReady);
    }

    [Fact]
    public void A_recycled_worker_is_replaced_then_retired_with_its_reason_and_a_condemned_one_is_replaced_at_once()
    {
        var recycled = Worker(0);
        recycled.Recycle("older than max_worker_age (100 s)");
        var condemned = Worker(1);
        condemned.Condemn(_clock.After(Supervision.AbortGrace), abort: true);
        var plan = Supervision.PlanWorkers([recycled, condemned], 2, false, 1);
        Assert.Equal(new[] { 0, 1 }, plan.Spawn);
        Assert.Empty(plan.Retire);

        plan = Supervision.PlanWorkers([recycled, condemned, Worker(0), Worker(1)], 2, false, 1);
        Assert.Empty(plan.Spawn);
        Assert.Equal(new[] { (recycled, "older than max_worker_age (100 s)") }, plan.Retire); // the condemned one is already being killed
    }

    [Fact]
    public void Workers_past_the_target_retire_and_WINCH_retires_them_all()
    {
        var workers = new[] { Worker(0), Worker(1), Worker(2) };
        var plan = Supervision.PlanWorkers(workers, 2, false, 1);
        Assert.Equal(new[] { (workers[2], "fewer workers wanted") }, plan.Retire);
        Assert.True(plan.AllReady);

        workers[2].Retire(_clock.After(Seconds(30)));
        plan = Supervision.PlanWorkers(workers, 2, winched: true, 1);
        Assert.Equal(0, plan.Target);
        Assert.Equal(new[] { (workers[0], "WINCH"), (workers[1], "WINCH") }, plan.Retire);
        Assert.Empty(plan.Spawn);
    }

    // ---- crash backoff -------------------------------------------------------------------------

    [Fact]
    public void Boot_failures_back_off_1_2_4_to_30_s_and_spawning_waits_exactly_that_long()
    {
        var backoff = new SpawnBackoff(_clock);
        Assert.True(backoff.MaySpawn);
        foreach (var expected in new[] { 1, 2, 4, 8, 16, 30, 30 })
        {
            var delay = backoff.BootFailed();
            Assert.Equal(Seconds(expected), delay);
            _clock.Advance(delay - Epsilon);
            Assert.False(backoff.MaySpawn);
            _clock.Advance(Epsilon);
            Assert.True(backoff.MaySpawn);
        }
        Assert.Equal(7, backoff.BootFailures);
    }

    [Fact]
    public void A_boot_restarts_the_backoff_sequence_and_HUP_clears_a_pending_wait()
    {
        var backoff = new SpawnBackoff(_clock);
        backoff.BootFailed();
        backoff.BootFailed();
        backoff.Booted();
        Assert.Equal(Seconds(1), backoff.BootFailed());

        backoff.BootFailed();
        backoff.Reset();
        Assert.True(backoff.MaySpawn);
        Assert.Equal(0, backoff.BootFailures);

        backoff.SpawnFailed();
        Assert.False(backoff.MaySpawn);
        _clock.Advance(Seconds(1));
        Assert.True(backoff.MaySpawn);
    }

    [Theory]
    [InlineData(null, 9, false)]   // SIGKILL from outside (an operator, a fault bench): replaced at once
    [InlineData(null, 15, false)]  // SIGTERM
    [InlineData(null, 2, false)]   // SIGINT
    [InlineData(null, 11, true)]   // SIGSEGV: the app crashed while loading
    [InlineData(null, 6, true)]    // SIGABRT
    [InlineData(null, 0, true)]    // exited on its own (any code) without a word
    [InlineData("app not found", 0, true)] // exit 4 with a reason
    [InlineData("did not report ready within worker_boot_timeout (60 s)", 9, true)] // the master's own KILL
    public void Only_the_apps_own_failure_to_boot_backs_off_not_a_kill_from_outside(string? reported, int signal, bool counts) =>
        Assert.Equal(counts, SpawnBackoff.CountsAsBootFailure(reported, signal));

    [Fact]
    public void A_worker_killed_from_outside_while_booting_is_not_a_boot_failure_but_a_boot_timeout_or_crash_is()
    {
        Assert.Equal(Ending.KilledWhileBooting, Supervision.Ending(Worker(booted: false), 0, 9, stopping: false));
        Assert.Equal(Ending.KilledWhileBooting, Supervision.Ending(Worker(booted: false), 0, 15, stopping: false));

        var timedOut = Worker(booted: false);
        timedOut.BootFailed("did not report ready within worker_boot_timeout (60 s)");
        timedOut.Condemn(_clock.After(Supervision.AbortGrace), abort: false);
        Assert.Equal(Ending.BootFailed, Supervision.Ending(timedOut, 0, 9, stopping: false));
        Assert.Equal(Ending.BootFailed, Supervision.Ending(Worker(booted: false), 4, 0, stopping: false));
        Assert.Equal(Ending.BootFailed, Supervision.Ending(Worker(booted: false), 0, 11, stopping: false));
    }

    [Fact]
    public void An_exit_reads_as_retired_killed_by_others_or_died_by_the_workers_state()
    {
        var retiring = Worker();
        retiring.Retire(_clock.After(Seconds(30)));
        Assert.Equal(Ending.Retired, Supervision.Ending(retiring, 0, 9, stopping: false)); // its graceful_timeout KILL too
        Assert.Equal(Ending.Retired, Supervision.Ending(Worker(booted: false), 0, 15, stopping: true));
        Assert.Equal(Ending.KilledByOthers, Supervision.Ending(Worker(), 0, 9, stopping: false)); // the OOM killer?
        var condemned = Worker();
        condemned.Condemn(_clock.After(Supervision.AbortGrace), abort: true);
        Assert.Equal(Ending.Died, Supervision.Ending(condemned, 0, 9, stopping: false));
        Assert.Equal(Ending.Died, Supervision.Ending(Worker(), 1, 0, stopping: false));
    }

    [Fact]
    public void A_wall_clock_step_back_does_not_stretch_the_backoff()
    {
        var backoff = new SpawnBackoff(_clock);
        backoff.BootFailed();
        _clock.StepWall(-TimeSpan.FromHours(1));
        _clock.Advance(Seconds(1));
        Assert.True(backoff.MaySpawn);
    }
}
