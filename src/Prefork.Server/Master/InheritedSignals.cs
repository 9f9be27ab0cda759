using Prefork.Interop;
using Mono.Unix.Native;

namespace Prefork.Master;

/// <summary>
/// A master started with its signals ignored (`nohup`, `prefork … &amp;` in a script without job control, some
/// supervisors) inherits SIG_IGN across exec, and .NET never installs its handler over a signal ignored at start:
/// HUP, INT and QUIT would do nothing. Gunicorn's Python takes them regardless, and so must we. A signal blocked
/// at start (a parent's mask, also kept across exec; `perf record` leaves WINCH so) stays blocked in every thread
/// the runtime starts, and is never delivered. The master resets them to their default, unblocks them, and
/// executes itself once (same pid, argv and environment, no socket bound yet), so the runtime starts clean.
/// </summary>
internal static class InheritedSignals
{
    /// <summary>Set in the environment of the second image: names what was reset, and stops a loop if a reset fails.</summary>
    public const string EnvReset = "PREFORK_SIGNALS_RESET";

    // Not CHLD: it only wakes the loop early, which reaps its children on every turn anyway.
    private static readonly (int Number, string Name)[] Handled =
        MasterSignals.Trapped.Where(s => s.Name != "CHLD").Select(s => (s.Number, s.Name)).ToArray();

    /// <summary>Returns only if nothing had to be reset, or the exec failed (then with why).</summary>
    public static string? ResetAndExecIfAny()
    {
        if (Environment.GetEnvironmentVariable(EnvReset) is not null) return null; // this is the second image
        var ignored = Handled.Where(s => IsSet(Mask("SigIgn"), s.Number)).ToList();
        var blocked = Handled.Where(s => IsSet(Mask("SigBlk"), s.Number)).ToList(); // this, the main thread's
        if (ignored.Count == 0 && blocked.Count == 0) return null;
        foreach (var (number, _) in ignored) Stdlib.SetSignalAction(NativeConvert.ToSignum(number), SignalAction.Default);
        // exec keeps the calling thread's mask: the second image starts with these deliverable.
        Native.UnblockSignals(blocked.Aggregate(0UL, (mask, s) => mask | (1UL << (s.Number - 1))));
        var what = string.Join(", ", new[] { (ignored, "ignored"), (blocked, "blocked") }
            .Where(g => g.Item1.Count > 0).Select(g => $"{string.Join(' ', g.Item1.Select(s => s.Name))} were {g.Item2}"));
        return $"signals {what} at start and could not be taken back: " + InPlaceUpgrade.ExecSelf(EnvReset, what);
    }

    private static bool IsSet(ulong mask, int signal) => (mask & (1UL << (signal - 1))) != 0;

    /// <summary>After the exec: what was reset (to log), taken out of the environment so workers do not inherit it.</summary>
    public static string? TakeReset()
    {
        var reset = Environment.GetEnvironmentVariable(EnvReset);
        Environment.SetEnvironmentVariable(EnvReset, null);
        return reset;
    }

    /// <summary>A signal mask in /proc/self/status (SigIgn: ignored, SigBlk: blocked), bit N-1 for signal N.</summary>
    private static ulong Mask(string field) =>
        File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal)) is { } line
            ? Convert.ToUInt64(line[(field.Length + 1)..].Trim(), 16) : 0;
}
