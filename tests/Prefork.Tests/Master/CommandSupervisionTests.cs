using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Master;
using Prefork.Protocol;

namespace Prefork.Tests.Master;

/// <summary>The master's rules for command workers (sd_notify readiness, the opt-in watchdog, ready delay), on a clock the test moves.</summary>
public sealed class CommandSupervisionTests
{
    private readonly ManualClock _clock = new();
    private readonly Supervision _supervision;

    public CommandSupervisionTests() => _supervision = new Supervision(_clock);

    private static GatewayConfig Config(params (string Key, string Value)[] settings) =>
        ConfigLoader.Load(null, settings.Select(s => new KeyValuePair<string, string>(s.Key, s.Value)));

    private WorkerHandle Worker(int readyDelay = 0, bool booted = true) => new()
    {
        Pid = 1000, Index = 0, Generation = 1, PipeFd = -1, Booted = booted,
        SpawnedAt = _clock.GetTimestamp(), LastHeard = _clock.GetTimestamp(),
        Command = new CommandDetails(Signum.SIGTERM, readyDelay),
    };

    [Fact]
    public void A_silent_command_worker_is_judged_only_once_it_has_sent_a_WATCHDOG()
    {
        var config = Config(("timeout", "10"));
        var w = Worker();
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(Verdict.Spare, _supervision.Judge(w, config).Verdict);
        w.OnNotify(NotifyMessage.Parse("WATCHDOG=1"), _clock.GetTimestamp());
        _clock.Advance(TimeSpan.FromSeconds(11));
        Assert.Equal(Verdict.SilentTimedOut, _supervision.Judge(w, config).Verdict);
    }

    [Fact]
    public void A_command_workers_heartbeat_fields_time_its_request_without_a_watchdog()
    {
        var config = Config(("timeout", "10"));
        var w = Worker();
        w.OnNotify(NotifyMessage.Parse("PREFORK_REQUESTS=5\nPREFORK_BUSY_MS=9500\nPREFORK_METHOD=POST\nPREFORK_PATH=/report"), _clock.GetTimestamp());
        Assert.Equal(5, w.Requests);
        Assert.Equal("POST /report", w.BusyRequest);
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(Verdict.RequestTimedOut, _supervision.Judge(w, config).Verdict);
    }

    [Fact]
    public void READY_1_boots_it_once()
    {
        var w = Worker(booted: false);
        Assert.True(w.OnNotify(NotifyMessage.Parse("STATUS=warming up"), _clock.GetTimestamp()) is false && w.State == WorkerState.Booting);
        Assert.Equal("warming up", w.Status);
        Assert.True(w.OnNotify(NotifyMessage.Parse("READY=1\nSTATUS=serving"), _clock.GetTimestamp()));
        Assert.Equal(WorkerState.Serving, w.State);
        Assert.False(w.OnNotify(NotifyMessage.Parse("READY=1"), _clock.GetTimestamp()));
    }

    [Fact]
    public void With_ready_delay_it_counts_as_ready_after_the_delay_and_not_before()
    {
        var w = Worker(readyDelay: 3, booted: false);
        _clock.Advance(TimeSpan.FromSeconds(2.9));
        Assert.False(_supervision.ReadyByDelay(w));
        _clock.Advance(TimeSpan.FromSeconds(0.2));
        Assert.True(_supervision.ReadyByDelay(w));
        Assert.False(_supervision.ReadyByDelay(Worker(readyDelay: 0, booted: false)));
    }

    [Fact]
    public void A_command_worker_stops_on_stop_signal_and_fast_on_TERM_and_gets_no_USR1()
    {
        var w = new WorkerHandle
        {
            Pid = 1, Index = 0, Generation = 1, PipeFd = -1, SpawnedAt = 0, LastHeard = 0,
            Command = new CommandDetails(Signum.SIGUSR2, 0),
        };
        Assert.Equal(Signum.SIGUSR2, w.StopSignal);
        Assert.Equal(Signum.SIGTERM, w.FastStopSignal);
        var gateway = new WorkerHandle { Pid = 2, Index = 0, Generation = 1, PipeFd = -1, SpawnedAt = 0, LastHeard = 0 };
        Assert.Equal(Signum.SIGTERM, gateway.StopSignal);
        Assert.Equal(Signum.SIGQUIT, gateway.FastStopSignal);
    }
}
