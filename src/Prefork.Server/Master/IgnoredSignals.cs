using Mono.Unix.Native;

namespace Prefork.Master;

/// <summary>
/// A master started with its signals ignored (`nohup`, `prefork … &amp;` in a script without job control, some
/// supervisors) inherits SIG_IGN across exec, and .NET never installs its handler over a signal ignored at start:
/// HUP, INT and QUIT would do nothing. Gunicorn's Python takes them regardless, and so must we. The master resets
/// them to their default and executes itself once (same pid, argv and environment, no socket bound yet), so the
/// runtime starts with them at default and takes them.
/// </summary>
internal static class IgnoredSignals
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
        ulong mask = IgnoredMask();
        var ignored = Handled.Where(s => (mask & (1UL << (s.Number - 1))) != 0).Select(s => s.Name).ToList();
        if (ignored.Count == 0) return null;
        foreach (var (number, name) in Handled)
            if (ignored.Contains(name)) Stdlib.SetSignalAction(NativeConvert.ToSignum(number), SignalAction.Default);
        return $"signals {string.Join(", ", ignored)} were ignored at start and could not be taken back: " +
               InPlaceUpgrade.ExecSelf(EnvReset, string.Join(' ', ignored));
    }

    /// <summary>After the exec: what was reset (to log), taken out of the environment so workers do not inherit it.</summary>
    public static string? TakeReset()
    {
        var reset = Environment.GetEnvironmentVariable(EnvReset);
        Environment.SetEnvironmentVariable(EnvReset, null);
        return reset;
    }

    /// <summary>SigIgn in /proc/self/status: the mask of ignored signals, bit N-1 for signal N.</summary>
    private static ulong IgnoredMask() =>
        File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) is { } line
            ? Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) : 0;
}
