using System.Text;

namespace Prefork.Http;

/// <summary>The "Date: …\r\n" header line, formatted at most once a second and shared as bytes.</summary>
public static class DateHeader
{
    private static long _tickSecond = -1;
    private static byte[] _line = [];

    public static ReadOnlySpan<byte> Line
    {
        get
        {
            long now = Environment.TickCount64 / 1000;
            if (now != Volatile.Read(ref _tickSecond))
            {
                _line = Encoding.ASCII.GetBytes("Date: " + DateTimeOffset.UtcNow.ToString("r") + "\r\n");
                Volatile.Write(ref _tickSecond, now);
            }
            return _line;
        }
    }
}
