using System.Runtime.InteropServices;
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
        MasterSignals.Trapped.Where(s => s.Signal != PosixSignal.SIGCHLD).Select(s => (s.Number, s.Name)).ToArray();

    private static readonly ulong HandledMask = Handled.Aggregate(0UL, (mask, s) => mask | Bit(s.Number));

    /// <summary>Returns only if nothing had to be reset, or the exec failed (then with why).</summary>
    public static string? ResetAndExecIfAny()
    {
        if (Environment.GetEnvironmentVariable(EnvReset) is not null) return null; // this is the second image
        var status = File.ReadAllLines("/proc/self/status"); // the main thread's: this one
        ulong ignored = Mask(status, "SigIgn") & HandledMask, blocked = Mask(status, "SigBlk") & HandledMask;
        if ((ignored | blocked) == 0) return null;
        foreach (var (number, _) in Handled)
            if ((ignored & Bit(number)) != 0) Stdlib.SetSignalAction(NativeConvert.ToSignum(number), SignalAction.Default);
        Native.UnblockSignals(blocked); // exec keeps the calling thread's mask: the second image starts with these deliverable
        var what = string.Join(", ", new[] { (ignored, "ignored"), (blocked, "blocked") }.Where(g => g.Item1 != 0)
            .Select(g => string.Join(' ', Handled.Where(s => (g.Item1 & Bit(s.Number)) != 0).Select(s => s.Name)) + " were " + g.Item2));
        return $"signals {what} at start and could not be taken back: " + InPlaceUpgrade.ExecSelf(EnvReset, what);
    }

    /// <summary>Signal N's bit in a mask: N-1, as in /proc's masks and sigset_t.</summary>
    private static ulong Bit(int signal) => 1UL << (signal - 1);

    /// <summary>After the exec: what was reset (to log), taken out of the environment so workers do not inherit it.</summary>
    public static string? TakeReset()
    {
        var reset = Environment.GetEnvironmentVariable(EnvReset);
        Environment.SetEnvironmentVariable(EnvReset, null);
        return reset;
    }

    /// <summary>A signal mask from /proc/self/status (SigIgn: ignored, SigBlk: blocked).</summary>
    private static ulong Mask(string[] status, string field) =>
        status.FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal)) is { } line
            ? Convert.ToUInt64(line[(field.Length + 1)..].Trim(), 16) : 0;
}
