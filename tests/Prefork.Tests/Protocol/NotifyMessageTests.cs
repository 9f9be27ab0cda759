using Prefork.Master;
using Prefork.Protocol;

namespace Prefork.Tests.Protocol;

/// <summary>sd_notify datagrams from command workers, and their output, as the master reads them.</summary>
public sealed class NotifyMessageTests
{
    [Fact]
    public void Systemds_keys_and_Preforks_heartbeat_fields_are_read_and_others_ignored()
    {
        var m = NotifyMessage.Parse("READY=1\nSTATUS=Serving 3 sockets\nMAINPID=77\nWATCHDOG=1\nPREFORK_REQUESTS=12\nPREFORK_BUSY_MS=340\nPREFORK_METHOD=GET\nPREFORK_PATH=/slow\n");
        Assert.True(m.Ready);
        Assert.True(m.Watchdog);
        Assert.False(m.WatchdogTrigger);
        Assert.Equal("Serving 3 sockets", m.Status);
        Assert.Equal(new WorkerMessage.Heartbeat(12, 340, "GET", "/slow"), m.Heartbeat);
    }

    [Theory]
    [InlineData("READY=0")]
    [InlineData("READY")]
    [InlineData("=1")]
    [InlineData("")]
    [InlineData("PREFORK_BUSY_MS=5")] // no count: no heartbeat, so no counter can go back to 0
    [InlineData("PREFORK_REQUESTS=abc")]
    [InlineData("PREFORK_REQUESTS=-3")]
    public void Nothing_is_taken_from_what_is_not_a_known_key_with_a_valid_value(string datagram)
    {
        var m = NotifyMessage.Parse(datagram);
        Assert.False(m.Ready);
        Assert.Null(m.Heartbeat);
    }

    [Fact]
    public void WATCHDOG_trigger_and_STOPPING_are_noted_and_an_idle_heartbeat_has_no_request()
    {
        var m = NotifyMessage.Parse("WATCHDOG=trigger\nSTOPPING=1\nPREFORK_REQUESTS=4\nPREFORK_BUSY_MS=-1\nPREFORK_PATH=/ignored");
        Assert.True(m.WatchdogTrigger);
        Assert.False(m.Watchdog);
        Assert.True(m.Stopping);
        Assert.Equal(new WorkerMessage.Heartbeat(4, -1), m.Heartbeat);
    }

    [Fact]
    public void A_path_or_status_from_a_worker_is_bounded_and_has_no_control_characters()
    {
        var m = NotifyMessage.Parse("PREFORK_REQUESTS=1\nPREFORK_BUSY_MS=1\nPREFORK_PATH=/" + new string('a', 5000) + "\rX\nSTATUS=a\tb");
        Assert.Equal(WorkerMessage.MaxPathLength, m.Heartbeat!.Path.Length);
        Assert.Equal("a?b", m.Status);
    }

    [Fact]
    public void Output_is_logged_a_whole_line_at_a_time_long_lines_are_cut_and_the_last_lines_are_kept()
    {
        var output = new WorkerOutput("worker 0 (pid 1)");
        output.Take("first li");
        Assert.Null(output.LastLines); // no newline yet: nothing logged
        output.Take("ne\r\nsecond\x1b[31m\n");
        Assert.Equal("first line | second?[31m", output.LastLines);
        output.Take(new string('x', WorkerOutput.MaxLine + 10));
        Assert.EndsWith("…", output.LastLines); // the first MaxLine characters were a line of their own
        output.Take("tail");
        output.Flush();
        for (int i = 0; i < 10; i++) output.Take($"line {i}\n");
        Assert.Equal("line 5 | line 6 | line 7 | line 8 | line 9", output.LastLines);
    }

    [Theory]
    [InlineData("127.0.0.1:8000", "127.0.0.1_8000")]
    [InlineData("[::1]:8000", "[__1]_8000")]
    [InlineData("unix:/run/app.sock", "unix_/run/app.sock")]
    public void A_socket_without_a_name_is_named_after_its_address_in_a_form_systemd_accepts(string address, string name)
    {
        Assert.Equal(name, WorkerSpawner.FdNameOf(address));
        Assert.True(Prefork.Config.Settings.IsFdName(name));
    }
}
