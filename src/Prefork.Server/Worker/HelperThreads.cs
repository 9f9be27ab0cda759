using Serilog;
using Prefork.Interop;

namespace Prefork.Worker;

/// <summary>
/// Keeps an epoll worker's other threads from preempting its event loop, which runs on the
/// process's main thread. Every other thread (the runtime's thread pool and socket engine, on which
/// an asynchronous app's I/O completes, its timer, the heartbeat) is moved from SCHED_OTHER to
/// SCHED_BATCH: the same share of the CPU, but a thread that wakes does not take the loop's CPU at
/// once. Without it, each database query's result woke a thread that interrupted the loop serving
/// every other connection; with it, server CPU per database request fell by 9–15 % in an A/B run
/// (bench/results/techempower-2026-12-03-vm-batch.md). Threads start at any time, so the heartbeat
/// looks again every second. No privilege is needed; a thread with another policy (set with chrt,
/// say) keeps it.
/// </summary>
internal sealed class HelperThreads
{
    private readonly int _loopTid = Environment.ProcessId; // the main thread's tid is the pid
    private bool _refused;

    /// <summary>Moves every thread still at SCHED_OTHER but the loop (so, in practice, those started since the last call).</summary>
    public void Demote()
    {
        if (_refused) return;
        foreach (var path in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (!int.TryParse(Path.GetFileName(path), out int tid) || tid == _loopTid) continue;
            if (Native.sched_getscheduler(tid) != Native.SCHED_OTHER) continue; // moved already, another policy, or ended (-1)
            if (Native.SetSchedulingPolicy(tid, Native.SCHED_BATCH) == 0 || Native.Errno == Native.ESRCH) continue; // ESRCH: it has ended
            // A sandbox (seccomp) may refuse the call: the loop is then served as it was before this existed.
            Log.Debug("Helper threads keep their scheduling policy: sched_setscheduler failed with errno {Errno}", Native.Errno);
            _refused = true;
            return;
        }
    }
}
