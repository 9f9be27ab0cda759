using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Prefork.Control;

/// <summary>
/// Something the master is asked to do: a signal it trapped, or a control request. Both go through
/// one <see cref="CommandQueue"/> and are carried out on the master's loop thread only.
/// </summary>
public abstract record MasterCommand
{
    /// <summary>Completed by the loop once the command is carried out (or refused). Signals have none.</summary>
    public TaskCompletionSource<CommandResult>? Done { get; init; }

    private int _fate; // a request's: 0 waiting in the queue; 1 taken by the loop; 2 abandoned by its asker

    /// <summary>The loop takes it to carry it out; false when its asker gave up waiting (then it must not run).</summary>
    internal bool TryTake() => Done is null || Interlocked.CompareExchange(ref _fate, 1, 0) != 2;

    /// <summary>Its asker gives up waiting; false when the loop has already taken it (it runs, and completes).</summary>
    public bool TryAbandon() => Interlocked.CompareExchange(ref _fate, 2, 0) == 0;

    public sealed record Signal(PosixSignal Number) : MasterCommand;
    /// <summary>Set the target to <paramref name="Workers"/>, or change it by <paramref name="Delta"/> when Workers is null.</summary>
    public sealed record Scale(int? Workers, int Delta) : MasterCommand;
    public sealed record Reload : MasterCommand;
    public sealed record Reopen : MasterCommand;
    /// <summary>Draining (true): readiness says no, so load balancers stop sending, while every worker goes on serving; false ends it.</summary>
    public sealed record Drain(bool On) : MasterCommand;
    public sealed record Stop(bool Quick) : MasterCommand;
    /// <summary>Stop this worker now (fast stop, KILL shortly after); it is replaced at once.</summary>
    public sealed record KillWorker(int Pid) : MasterCommand;
    /// <summary>Replace this worker: a new one starts, and it retires once that one is ready.</summary>
    public sealed record RecycleWorker(int Pid) : MasterCommand;

    /// <summary>Tells the asker it is done, in words for people (no-op for a signal).</summary>
    public void Complete(string message) => Done?.TrySetResult(new CommandResult(null, message));

    /// <summary>Tells the asker why it was not done.</summary>
    public void Refuse(string error) => Done?.TrySetResult(new CommandResult(error, ""));

    /// <summary>A control request, with the completion its asker waits on.</summary>
    public static T Asked<T>(T command) where T : MasterCommand =>
        command with { Done = new TaskCompletionSource<CommandResult>(TaskCreationOptions.RunContinuationsAsynchronously) };
}

/// <summary>How a command went: <paramref name="Error"/> is null when it was done.</summary>
public sealed record CommandResult(string? Error, string Message);

/// <summary>Commands for the master's loop, from signal handlers and the control socket's threads; each wakes the loop.</summary>
public sealed class CommandQueue(Action wake)
{
    private readonly ConcurrentQueue<MasterCommand> _queue = new();

    public void Enqueue(MasterCommand command)
    {
        // A signal already waiting is not queued twice (as the kernel merges a pending signal): a
        // script that sends `upgrade` in a loop cannot make the loop run one USR2 check after another.
        if (command is not MasterCommand.Signal || !_queue.Contains(command)) _queue.Enqueue(command);
        wake();
    }

    /// <summary>The next command to carry out. One whose asker gave up waiting (and was told it was not done) is dropped.</summary>
    public bool TryDequeue(out MasterCommand command)
    {
        while (_queue.TryDequeue(out command!))
            if (command.TryTake()) return true;
        return false;
    }
}
