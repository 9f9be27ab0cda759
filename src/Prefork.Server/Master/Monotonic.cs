namespace Prefork.Master;

/// <summary>
/// The master's clock: monotonic timestamps from a <see cref="TimeProvider"/> (the system one in
/// production, a hand-moved one in tests). On Linux, TimeProvider.System.GetTimestamp() is
/// Stopwatch.GetTimestamp(), which reads clock_gettime(CLOCK_MONOTONIC) in nanoseconds
/// (Stopwatch.Frequency is 1e9; dotnet/runtime System.Native pal_time.c, SystemNative_GetTimestamp).
/// CLOCK_MONOTONIC is system-wide and counts from boot, so a timestamp taken before an in-place
/// upgrade (exec) still compares with one taken after it. The wall clock is for people only (logs).
/// </summary>
internal static class Monotonic
{
    /// <summary>The timestamp <paramref name="span"/> from now.</summary>
    public static long After(this TimeProvider clock, TimeSpan span) =>
        clock.GetTimestamp() + (long)(span.TotalSeconds * clock.TimestampFrequency);
}
