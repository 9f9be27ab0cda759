using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Prefork.Master;
using Prefork.Tests.Support;

namespace Prefork.Tests.Master;

/// <summary>The clock the master's timestamps come from, and what crosses an in-place upgrade.</summary>
public sealed partial class MonotonicClockTests
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Seconds; public long Nanoseconds; }

    // The independent witness: the test reads CLOCK_MONOTONIC itself to check what Stopwatch reads.
    [LibraryImport("libc", SetLastError = true)]
    private static partial int clock_gettime(int clock, out Timespec time);

    private const int ClockMonotonic = 1;

    private static long MonotonicNs()
    {
        Assert.Equal(0, clock_gettime(ClockMonotonic, out var t));
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    [Fact]
    public void The_system_clocks_timestamps_are_CLOCK_MONOTONIC_nanoseconds_so_they_compare_across_exec()
    {
        Assert.Equal(1_000_000_000, TimeProvider.System.TimestampFrequency);
        Assert.Equal(Stopwatch.Frequency, TimeProvider.System.TimestampFrequency);
        long before = MonotonicNs();
        long timestamp = TimeProvider.System.GetTimestamp();
        long after = MonotonicNs();
        Assert.InRange(timestamp, before, after);
    }

    [GeneratedRegex(@"\b(DateTime|DateTimeOffset)\.(UtcNow|Now|Today)\b|GetUtcNow\(")]
    private static partial Regex WallClockRead();

    [Fact]
    public void The_master_reads_no_wall_clock()
    {
        var reads = Directory.EnumerateFiles(Repo.File("src/Prefork.Server/Master"), "*.cs")
            .SelectMany(file => File.ReadLines(file).Select((line, i) => $"{Path.GetFileName(file)}:{i + 1}: {line.Trim()}"))
            .Where(line => WallClockRead().IsMatch(line))
            .ToList();
        Assert.Empty(reads); // decisions use TimeProvider timestamps; logs carry the wall-clock time for people
    }

    [Fact]
    public void Worker_times_cross_an_upgrade_as_monotonic_timestamps_and_a_previous_images_wall_clock_time_is_ignored()
    {
        var state = new InPlaceUpgrade.State(3, [new("127.0.0.1:8000", 3)], [new(10, 0, 3, 7, true, 5, 0, 4_000_000_000_000, 4_000_500_000_000)]);
        var carried = JsonSerializer.Deserialize<InPlaceUpgrade.State>(JsonSerializer.Serialize(state))!;
        Assert.Equal(4_000_000_000_000, carried.Workers[0].SpawnedMonotonic);
        Assert.Equal(4_000_500_000_000, carried.Workers[0].LastHeardMonotonic);

        // What a master before the monotonic clock hands over: it must still be adopted, not crash the new image.
        const string previous = """
            {"Generation":3,"Listeners":[{"Text":"127.0.0.1:8000","Fd":3}],
             "Workers":[{"Pid":10,"Index":0,"Generation":3,"PipeFd":7,"Booted":true,"Requests":5,"MaxRequests":0,"SpawnedAt":"2026-12-02T05:00:00.1234567Z"}]}
            """;
        var adopted = JsonSerializer.Deserialize<InPlaceUpgrade.State>(previous)!;
        Assert.Equal(10, adopted.Workers[0].Pid);
        Assert.Null(adopted.Workers[0].SpawnedMonotonic);
        Assert.Null(adopted.Workers[0].LastHeardMonotonic);
    }
}
