namespace Prefork.Tests.Master;

/// <summary>
/// A clock the test moves by hand: a monotonic timestamp (ns) and, apart from it, a wall clock
/// that a test can step back and forth as NTP or an operator would.
/// </summary>
internal sealed class ManualClock : TimeProvider
{
    public long Timestamp { get; set; } = 5_000_000_000_000; // 83 min after boot: far from 0 and from wrap-around
    public DateTimeOffset Wall { get; set; } = new(2026, 12, 2, 5, 0, 0, TimeSpan.Zero);

    public override long TimestampFrequency => 1_000_000_000;
    public override long GetTimestamp() => Timestamp;
    public override DateTimeOffset GetUtcNow() => Wall;

    public void Advance(TimeSpan by) => Timestamp += by.Ticks * (TimestampFrequency / TimeSpan.TicksPerSecond); // exact

    /// <summary>The wall clock jumps; monotonic time does not move.</summary>
    public void StepWall(TimeSpan by) => Wall += by;
}
