using Prefork.Protocol;

namespace Prefork.Tests.Protocol;

/// <summary>The words between a worker and its master: one definition, round trips, and what a master makes of garbage.</summary>
public sealed class WorkerMessageTests
{
    public static TheoryData<WorkerMessage> Messages() =>
    [
        new WorkerMessage.Ready(),
        new WorkerMessage.Heartbeat(12, 340, "GET", "/slow"),
        new WorkerMessage.Heartbeat(0, -1),
        new WorkerMessage.Heartbeat(long.MaxValue, 0, "POST", "/a b=c%20d%?x=1&y==2"),
        new WorkerMessage.Heartbeat(7, 5, "GET", "/caf\u00e9/\u65e5\u672c"),
        new WorkerMessage.Heartbeat(7, 5, "", ""),
        new WorkerMessage.BootFailure("app 'x' not found"),
    ];

    [Theory]
    [MemberData(nameof(Messages))]
    public void A_message_survives_format_and_parse(WorkerMessage message)
    {
        var line = message.Format();
        Assert.DoesNotContain('\n', line);
        Assert.Equal(message, WorkerMessage.TryParse(line));
    }

    [Fact]
    public void A_heartbeat_has_named_fields_and_a_path_with_spaces_or_equals_signs_stays_one_field()
    {
        Assert.Equal("heartbeat requests=12 busy_ms=340 method=GET path=/slow", new WorkerMessage.Heartbeat(12, 340, "GET", "/slow").Format());
        Assert.Equal("heartbeat requests=3 busy_ms=-1", new WorkerMessage.Heartbeat(3, -1, "GET", "/ignored").Format());
        Assert.Equal("heartbeat requests=1 busy_ms=2 method=GET path=/a%20b%3Dc%25", new WorkerMessage.Heartbeat(1, 2, "GET", "/a b=c%").Format());
    }

    [Fact]
    public void Unknown_heartbeat_fields_and_field_order_do_not_matter_so_a_newer_worker_still_works()
    {
        var parsed = WorkerMessage.TryParse("heartbeat path=/x cpu_ms=5 requests=4 queue=a=b busy_ms=10 method=PUT novalue =x");
        Assert.Equal(new WorkerMessage.Heartbeat(4, 10, "PUT", "/x"), parsed);
        Assert.Equal(new WorkerMessage.Ready(), WorkerMessage.TryParse("ready version=2"));
    }

    [Fact]
    public void The_previous_programs_positional_ping_is_still_understood_after_an_upgrade()
    {
        Assert.Equal(new WorkerMessage.Heartbeat(12, 340, "GET", "/slow"), WorkerMessage.TryParse("ping 12 340 GET /slow"));
        Assert.Equal(new WorkerMessage.Heartbeat(12, -1), WorkerMessage.TryParse("ping 12 -1 - -"));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("hello")]
    [InlineData("heartbeat")]
    [InlineData("heartbeat requests=12")]
    [InlineData("heartbeat requests=x busy_ms=1")]
    [InlineData("heartbeat requests=99999999999999999999 busy_ms=1")]
    [InlineData("heartbeat requests= busy_ms=")]
    [InlineData("ping 1 2 GET")]
    [InlineData("ping a b c d")]
    [InlineData("READY")]
    public void Garbage_is_no_message(string line) => Assert.Null(WorkerMessage.TryParse(line));

    [Fact]
    public void Malformed_escapes_and_control_characters_cannot_reach_the_masters_log()
    {
        var beat = Assert.IsType<WorkerMessage.Heartbeat>(WorkerMessage.TryParse("heartbeat requests=1 busy_ms=1 method=GET path=/%0Ainjected%1b[31m%zz%4%"));
        Assert.Equal("/?injected?[31m%zz%4%", beat.Path);
        var failure = Assert.IsType<WorkerMessage.BootFailure>(WorkerMessage.TryParse("bootfail a\u0001b\u001bc"));
        Assert.Equal("a?b?c", failure.Reason);
        Assert.Equal(new WorkerMessage.BootFailure("unknown"), WorkerMessage.TryParse("bootfail"));
    }

    [Fact]
    public void A_long_path_is_bounded_before_encoding_and_the_line_stays_far_below_PIPE_BUF()
    {
        var line = new WorkerMessage.Heartbeat(1, 1, "GET", "/" + new string('=', 10_000)).Format();
        var beat = Assert.IsType<WorkerMessage.Heartbeat>(WorkerMessage.TryParse(line));
        Assert.Equal(WorkerMessage.MaxPathLength, beat.Path.Length);
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(line) < 1000);
    }

    [Fact]
    public void A_boot_failure_reason_travels_as_one_bounded_line_without_control_characters()
    {
        var line = new WorkerMessage.BootFailure("bad\nthing\r\nhere\ttab \u0001\u001b[31m\u007f\u0085 é" + new string('x', 5000)).Format();
        var reason = Assert.IsType<WorkerMessage.BootFailure>(WorkerMessage.TryParse(line)).Reason;
        Assert.StartsWith("bad | thing | here?tab ??[31m? |  é", reason); // NEL (U+0085) is a line break too
        Assert.Equal(WorkerMessage.MaxReasonLength, reason.Length);
        Assert.DoesNotContain(reason, char.IsControl);
    }
}
