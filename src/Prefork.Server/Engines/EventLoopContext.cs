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
    private int _sleeping; // 1 while the loop is blocked in epoll_wait (or about to be): a Post must wake it

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

    public override void Post(SendOrPostCallback callback, object? state)
    {
        _queue.Enqueue((callback, state));
        // Only a loop that sleeps must be woken: a busy one looks at its queue before it waits again.
        // Under load the loop is mostly busy, and the continuations that Npgsql's threads post (one
        // per query) then cost no eventfd write here and no read and extra turn on the loop. The
        // first Post to find it asleep wakes it; the others find the flag cleared.
        // (Enqueue is an interlocked operation, so the queue is written before the flag is read:
        // either this sees the loop's flag, or the loop sees this work; see PrepareToSleep.)
        if (Volatile.Read(ref _sleeping) == 1 && Thread.CurrentThread != _loopThread && Interlocked.Exchange(ref _sleeping, 0) == 1)
        {
            ulong one = 1;
            Native.write(EventFd, (byte*)&one, sizeof(ulong));
        }
    }

    /// <summary>
    /// On the loop thread, before it blocks in epoll_wait: marks it asleep, so a Post from another
    /// thread wakes it. False when work is queued already: run it rather than sleep.
    /// </summary>
    public bool PrepareToSleep()
    {
        Interlocked.Exchange(ref _sleeping, 1); // a full fence: set before the queue is looked at
        if (_queue.IsEmpty) return true;
        Volatile.Write(ref _sleeping, 0);
        return false;
    }

    /// <summary>On the loop thread, back from epoll_wait: busy again, posts need not wake it.</summary>
    public void Awake() => Volatile.Write(ref _sleeping, 0);

    /// <summary>On the loop thread, when epoll reports <see cref="EventFd"/>: takes the wake-up.</summary>
    public void OnWakeUp()
    {
        ulong count;
        Native.read(EventFd, (byte*)&count, sizeof(ulong));
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
