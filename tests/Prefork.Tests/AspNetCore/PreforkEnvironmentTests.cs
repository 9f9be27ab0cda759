using System.Collections;
using Prefork.AspNetCore;

namespace Prefork.Tests.AspNetCore;

public sealed class PreforkEnvironmentTests
{
    private const int Self = 4242;

    private static Hashtable Master(params (string Key, string Value)[] extra)
    {
        var variables = new Hashtable
        {
            ["PREFORK_MASTER_PID"] = "100", ["LISTEN_FDS"] = "2", ["LISTEN_PID"] = Self.ToString(), ["LISTEN_FDNAMES"] = "web:local",
            ["NOTIFY_SOCKET"] = "@prefork-notify", ["PREFORK_WORKER_INDEX"] = "3", ["PREFORK_GENERATION"] = "2",
            ["PREFORK_BACKLOG"] = "64", ["PREFORK_GRACEFUL_TIMEOUT"] = "7",
        };
        foreach (var (k, v) in extra) variables[k] = v;
        return variables;
    }

    [Fact]
    public void Reads_what_the_master_passes()
    {
        var prefork = PreforkEnvironment.Read(Master(("WATCHDOG_USEC", "3000000"), ("WATCHDOG_PID", Self.ToString())), Self)!;
        Assert.Equal([(3, "web"), (4, "local")], prefork.Listeners);
        Assert.Equal("@prefork-notify", prefork.NotifySocket);
        Assert.Equal(TimeSpan.FromSeconds(3), prefork.Watchdog);
        Assert.Equal((100, 3, 2, 64), (prefork.MasterPid, prefork.WorkerIndex, prefork.Generation, prefork.Backlog));
        Assert.Equal(TimeSpan.FromSeconds(7), prefork.GracefulTimeout);
    }

    [Fact]
    public void Outside_prefork_is_null()
    {
        Assert.Null(PreforkEnvironment.Read(new Hashtable(), Self));
        var noMaster = Master();
        noMaster.Remove("PREFORK_MASTER_PID");
        Assert.Null(PreforkEnvironment.Read(noMaster, Self)); // plain systemd socket activation is not Prefork
        Assert.Null(PreforkEnvironment.Read(Master(("LISTEN_PID", "1")), Self)); // the sockets were meant for another process
    }

    [Fact]
    public void The_watchdog_is_someone_elses_when_watchdog_pid_names_another_process()
    {
        Assert.Null(PreforkEnvironment.Read(Master(("WATCHDOG_USEC", "3000000"), ("WATCHDOG_PID", "1")), Self)!.Watchdog);
        Assert.Null(PreforkEnvironment.Read(Master(), Self)!.Watchdog);
    }

    [Theory]
    [InlineData("LISTEN_FDS", "0")]
    [InlineData("LISTEN_FDS", "two")]
    [InlineData("PREFORK_BACKLOG", "-5")]
    [InlineData("PREFORK_GRACEFUL_TIMEOUT", "1.5")]
    [InlineData("WATCHDOG_USEC", "0")]
    public void A_malformed_value_is_named(string name, string value)
    {
        var e = Assert.Throws<InvalidOperationException>(() => PreforkEnvironment.Read(Master((name, value)), Self));
        Assert.Contains($"{name}='{value}' is not", e.Message);
    }
}
