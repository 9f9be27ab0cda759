using System.Diagnostics;

namespace Prefork.AspNetCore;

/// <summary>
/// Requests served so far and the ones in flight (method, path, start), for the heartbeat: the
/// master kills a worker whose oldest request has run longer than its `timeout`, and names that
/// request in its log. Per request: two interlocked operations on a slot (claimed lock-free,
/// starting from the thread's own place so threads rarely meet) and one on the counter; no allocation.
/// </summary>
internal sealed class RequestTracker
{
    private Slot[] _slots = NewSlots(64);
    private long _served;
    private readonly Lock _growing = new();

    /// <summary>The worker is about to stop: answers carry `Connection: close` (see <see cref="MasterLink"/>).</summary>
    public volatile bool Draining;

    /// <summary>Requests finished so far (successfully or not); monotonic.</summary>
    public long Served => Interlocked.Read(ref _served);

    /// <summary>Marks a request in flight; pass the slot to <see cref="End"/> when it is done.</summary>
    public Slot Begin(string method, string path)
    {
        while (true)
        {
            var slots = Volatile.Read(ref _slots);
            int start = Environment.CurrentManagedThreadId;
            for (int i = 0; i < slots.Length; i++)
            {
                var slot = slots[(uint)(start + i) % (uint)slots.Length];
                if (slot.TryClaim(method, path)) return slot;
            }
            Grow(slots);
        }
    }

    public void End(Slot slot)
    {
        slot.Release();
        Count();
    }

    /// <summary>Counts a request that was not in a slot (an upgrade: see <see cref="RequestTrackingMiddleware"/>).</summary>
    public void Count() => Interlocked.Increment(ref _served);

    /// <summary>The oldest request in flight: how long it has run (ms) with its method and path; BusyMs -1 when idle.</summary>
    public (long BusyMs, string Method, string Path) Oldest()
    {
        long oldest = long.MaxValue;
        (string, string) request = ("", "");
        foreach (var slot in Volatile.Read(ref _slots))
            if (slot.Read(out long started, out string method, out string path) && started < oldest)
                (oldest, request) = (started, (method, path));
        return oldest == long.MaxValue ? (-1, "", "") : ((long)Stopwatch.GetElapsedTime(oldest).TotalMilliseconds, request.Item1, request.Item2);
    }

    /// <summary>Every slot is taken: double the array (rare, under a lock). Slots keep their owners: the new array holds the same ones.</summary>
    private void Grow(Slot[] full)
    {
        lock (_growing)
        {
            if (_slots != full) return; // another thread grew it
            var bigger = NewSlots(full.Length * 2);
            full.CopyTo(bigger, 0);
            Volatile.Write(ref _slots, bigger);
        }
    }

    private static Slot[] NewSlots(int count)
    {
        var slots = new Slot[count];
        for (int i = 0; i < count; i++) slots[i] = new Slot();
        return slots;
    }

    /// <summary>One request in flight. Its start time doubles as a version: a reader that sees the same start before and after reading method and path has read one request.</summary>
    public sealed class Slot
    {
        private int _taken;
        private long _started; // Stopwatch timestamp; 0 while the slot is free or being filled
        private string _method = "", _path = "";

        internal bool TryClaim(string method, string path)
        {
            if (Volatile.Read(ref _taken) != 0 || Interlocked.CompareExchange(ref _taken, 1, 0) != 0) return false;
            _method = method;
            _path = path;
            Volatile.Write(ref _started, Stopwatch.GetTimestamp());
            return true;
        }

        internal void Release()
        {
            Volatile.Write(ref _started, 0);
            Volatile.Write(ref _taken, 0);
        }

        internal bool Read(out long started, out string method, out string path)
        {
            started = Volatile.Read(ref _started);
            method = Volatile.Read(ref _method);
            path = Volatile.Read(ref _path);
            return started != 0 && Volatile.Read(ref _started) == started;
        }
    }
}
