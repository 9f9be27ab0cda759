using System.Runtime.InteropServices;
using Prefork.Control;

namespace Prefork.Tests.Control;

/// <summary>The master's one queue of signals and control requests.</summary>
public sealed class CommandQueueTests
{
    [Fact]
    public void A_signal_already_waiting_is_merged_and_every_request_and_other_signal_is_kept()
    {
        int wakes = 0;
        var queue = new CommandQueue(() => wakes++);
        for (int i = 0; i < 100; i++) queue.Enqueue(new MasterCommand.Signal((PosixSignal)12)); // `prefork ctl upgrade` in a loop
        queue.Enqueue(new MasterCommand.Signal(PosixSignal.SIGHUP));
        queue.Enqueue(new MasterCommand.Reload());
        queue.Enqueue(new MasterCommand.Reload());
        var taken = new List<MasterCommand>();
        while (queue.TryDequeue(out var c)) taken.Add(c);
        Assert.Equal([new MasterCommand.Signal((PosixSignal)12), new MasterCommand.Signal(PosixSignal.SIGHUP), new MasterCommand.Reload(), new MasterCommand.Reload()], taken);
        Assert.Equal(103, wakes); // every enqueue wakes the loop, merged or not
        queue.Enqueue(new MasterCommand.Signal((PosixSignal)12)); // once taken, the same signal queues again
        Assert.True(queue.TryDequeue(out _));
    }

    [Fact]
    public void A_request_its_asker_gave_up_on_is_dropped_and_one_the_loop_took_can_no_longer_be_given_up()
    {
        var queue = new CommandQueue(() => { });
        var abandoned = MasterCommand.Asked(new MasterCommand.Reload());
        var kept = MasterCommand.Asked(new MasterCommand.Scale(3, 0));
        queue.Enqueue(abandoned);
        queue.Enqueue(kept);
        Assert.True(abandoned.TryAbandon()); // the asker timed out and was told "dropped, not carried out"

        Assert.True(queue.TryDequeue(out var taken));
        Assert.Same(kept, taken);            // the abandoned reload never reaches the loop
        Assert.False(queue.TryDequeue(out _));
        Assert.False(kept.TryAbandon());     // taken: its asker waits for the answer instead
    }
}
