using Prefork.Worker;

namespace Prefork.Tests.Worker;

public sealed class MasterChannelTests
{
    [Fact]
    public void A_boot_failure_reason_travels_as_one_bounded_line_without_control_characters()
    {
        var reason = MasterChannel.OneLine("bad\nthing\r\nhere\ttab \u0001\u001b[31m\u007f\u0085 é" + new string('x', 5000));
        Assert.StartsWith("bad | thing | here?tab ??[31m? |  é", reason); // NEL (U+0085) is a line break too
        Assert.Equal(MasterChannel.MaxReasonLength, reason.Length);
        Assert.DoesNotContain(reason, char.IsControl);
    }
}
