using System.Text;

namespace Prefork.Http;

/// <summary>The "Date: …\r\n" header line, formatted at most once a second and shared as bytes.</summary>
public static class DateHeader
{
    private sealed record Cached(long Second, byte[] Line);

    private static Cached _cached = new(-1, []);

    public static ReadOnlySpan<byte> Line
    {
        get
        {
            // Keyed on the wall-clock second (not a tick count), so the header turns over with the clock.
            var now = DateTime.UtcNow;
            long second = now.Ticks / TimeSpan.TicksPerSecond;
            var cached = Volatile.Read(ref _cached);
            if (cached.Second != second)
            {
                cached = new Cached(second, Encoding.ASCII.GetBytes("Date: " + now.ToString("r") + "\r\n"));
                Volatile.Write(ref _cached, cached); // line and second change together, so threads never mix them
            }
            return cached.Line;
        }
    }
}
