using Serilog;
using Prefork.Interop;

namespace Prefork.Engines;

/// <summary>
/// Keeps the epoll worker's other threads from preempting its event loop. Every thread of the
/// worker but the loop (the runtime's thread pool and socket engine, on which an asynchronous app's
/// I/O completes, its timer, the heartbeat) is moved from SCHED_OTHER to SCHED_BATCH: the same share
/// of the CPU, but a thread that wakes takes an idle CPU or waits for the next tick, instead of
/// taking the loop's CPU at once. Without it, each database query's result woke a thread that
/// interrupted the loop serving every other connection; with it, server CPU per database request
/// fell by 9–15 % in an A/B run (bench/results/techempower-2026-12-03-vm-batch.md). Threads start at any time, so
/// the list is looked at again every second. No privilege is needed; a thread the operator gave
/// another policy (chrt) keeps it.
/// </summary>
internal sealed class HelperThreads
{
    private const int RescanMs = 1000;
    private readonly int _loopTid = Native.gettid();
    private readonly HashSet<int> _seen = [];
    private long _nextScan;
    private bool _refused;

    /// <summary>On the loop thread: moves the threads started since the last look (at most once a second).</summary>
    public void Demote(long now)
    {
        if (_refused || now < _nextScan) return;
        _nextScan = now + RescanMs;
        foreach (var path in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (!int.TryParse(Path.GetFileName(path), out int tid) || tid == _loopTid || !_seen.Add(tid)) continue;
            if (Native.sched_getscheduler(tid) != Native.SCHED_OTHER) continue; // chosen by the operator, or ended (-1)
            if (Native.SetSchedulingPolicy(tid, Native.SCHED_BATCH) == 0 || Native.Errno == Native.ESRCH) continue; // ESRCH: it has ended
            // A sandbox (seccomp) may refuse the call: the loop is then served as it was before this existed.
            Log.Debug("Helper threads keep their scheduling policy: sched_setscheduler failed with errno {Errno}", Native.Errno);
            _refused = true;
            return;
        }
    }
}
