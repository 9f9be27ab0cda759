using System.Collections.Concurrent;
using Serilog;
using Prefork.Interop;

namespace Prefork.Engines;

/// <summary>
/// The epoll worker's SynchronizationContext: an application's <c>await</c> on the loop thread
/// resumes on the loop thread. Post (from a timer, the thread pool, anywhere) queues the
/// continuation and wakes the loop through an eventfd it watches; the loop runs what is queued
/// between rounds of I/O. So asynchronous applications need no locks, and one worker serves many
/// slow requests at once.
/// </summary>
public sealed unsafe class EventLoopContext : SynchronizationContext, IDisposable
{
    private readonly ConcurrentQueue<(SendOrPostCallback Callback, object? State)> _queue = new();
    private readonly Thread _loopThread;
    private readonly RequestSlot _slot;
    private int _signalled; // 1 while the eventfd holds a wake-up the loop has not read

    /// <param name="slot">Marks the loop busy while a continuation runs, so the heartbeat reports a loop stuck in one.</param>
    public EventLoopContext(RequestSlot slot)
    {
        _slot = slot;
        _loopThread = Thread.CurrentThread;
        EventFd = Native.eventfd(0, Native.EFD_NONBLOCK | Native.EFD_CLOEXEC);
        if (EventFd < 0) throw new IOException($"eventfd failed: errno {Native.Errno}");
    }

    /// <summary>Readable when continuations are queued: the loop watches it with epoll.</summary>
    public int EventFd { get; }

    public bool HasWork => !_queue.IsEmpty;

    public override void Post(SendOrPostCallback callback, object? state)
    {
        _queue.Enqueue((callback, state));
        // The loop looks at its queue before it waits again: only another thread must wake it.
        if (Thread.CurrentThread != _loopThread && Interlocked.Exchange(ref _signalled, 1) == 0)
        {
            ulong one = 1;
            Native.write(EventFd, (byte*)&one, sizeof(ulong));
        }
    }

    /// <summary>On the loop thread, when epoll reports <see cref="EventFd"/>: takes the wake-up.</summary>
    public void OnWakeUp()
    {
        ulong count;
        Native.read(EventFd, (byte*)&count, sizeof(ulong));
        // Cleared after the read: a Post in between found it still set and did not write, and its
        // work is run this turn; one after it writes again.
        Volatile.Write(ref _signalled, 0);
    }

    /// <summary>Runs inline on the loop thread; from elsewhere, queues and waits.</summary>
    public override void Send(SendOrPostCallback callback, object? state)
    {
        if (Thread.CurrentThread == _loopThread)
        {
            callback(state);
            return;
        }
        using var done = new ManualResetEventSlim();
        Exception? failure = null;
        Post(_ =>
        {
            try { callback(state); }
            catch (Exception e) { failure = e; }
            finally { done.Set(); }
        }, null);
        done.Wait();
        if (failure is not null) throw new InvalidOperationException("a callback sent to the event loop failed", failure);
    }

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>On the loop thread: runs the continuations queued so far (those they queue wait for the next round).</summary>
    public void RunPending()
    {
        for (int n = _queue.Count; n > 0 && _queue.TryDequeue(out var work); n--)
        {
            _slot.Begin("ASYNC", "(continuation)");
            try
            {
                work.Callback(work.State);
            }
            catch (Exception e)
            {
                // An exception escaping a continuation (an async void method of the app, say) must not stop the loop.
                Log.Error(e, "Unhandled exception in a continuation on the event loop");
            }
            finally
            {
                _slot.End();
            }
        }
    }

    public void Dispose() => Native.close(EventFd);
}
