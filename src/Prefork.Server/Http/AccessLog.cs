using System.Diagnostics;
using System.Globalization;
using System.Text;
using Prefork.Config;
using Prefork.Gateway;
using Prefork.Logging;
using Serilog;

namespace Prefork.Http;

/// <summary>
/// The access log in Gunicorn's format language (Apache combined by default). The format is
/// compiled once into a list of parts that append straight into a per-thread line buffer, which
/// is encoded into a per-thread byte buffer and written whole: one write(2) per request (see
/// <see cref="LogFile"/>). That syscall is the price of lines that never tear between workers or
/// threads, and of no line lost when a worker dies; logging costs no allocation (the time is
/// formatted once a second).
/// </summary>
public sealed class AccessLog : IDisposable
{
    private readonly Action<StringBuilder, Entry>[] _parts;
    [ThreadStatic] private static StringBuilder? t_line;
    [ThreadStatic] private static char[]? t_chars;
    [ThreadStatic] private static byte[]? t_bytes;
    private readonly LogFile _file;
    private long _lastReport = long.MinValue / 2;

    public readonly record struct Entry(RequestEnvironment Env, RequestHead Head, int Status, long Bytes, long Started);

    public AccessLog(GatewayConfig config)
    {
        _parts = Compile(config.Get(Settings.AccessLogFormat));
        _file = LogFile.Open(config.Get(Settings.AccessLog) == "-" ? "-" : Path.GetFullPath(config.Get(Settings.AccessLog), config.BaseDirectory), standardFd: 1);
    }

    public void Write(RequestEnvironment env, RequestHead head, int status, long bytes, long started)
    {
        var entry = new Entry(env, head, status, bytes, started);
        var line = t_line ??= new StringBuilder(256);
        line.Clear();
        foreach (var part in _parts) part(line, entry);
        line.Append('\n');
        var chars = t_chars is { } c && c.Length >= line.Length ? c : t_chars = new char[line.Length * 2];
        line.CopyTo(0, chars, line.Length);
        var text = chars.AsSpan(0, line.Length);
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        var buffer = t_bytes is { } b && b.Length >= max ? b : t_bytes = new byte[max * 2];
        int length = Encoding.UTF8.GetBytes(text, buffer);
        if (!_file.Write(buffer.AsSpan(0, length))) ReportDropped();
    }

    /// <summary>A full disk or a closed pipe must not flood the error log: one line a second at most.</summary>
    private void ReportDropped()
    {
        long now = Environment.TickCount64, last = Interlocked.Read(ref _lastReport);
        if (now - last < 1000 || Interlocked.CompareExchange(ref _lastReport, now, last) != last) return;
        Log.Error("Access log write failed ({Error}); lines dropped so far: {Dropped}", LogFile.Describe(_file.LastError), _file.Dropped);
    }

    /// <summary>For USR1: after logrotate moved the file, write to a new one at the same path.</summary>
    public void Reopen()
    {
        try { _file.Reopen(); }
        catch (IOException e) { Log.Error("Access log not reopened, still writing to the old file: {Reason}", e.Message); }
    }

    public void Dispose()
    {
        if (_file.Dropped > 0 || _file.ShortWrites > 0)
            Log.Warning("Access log: {Dropped} line(s) dropped on write errors, {ShortWrites} short write(s) completed", _file.Dropped, _file.ShortWrites);
        _file.Dispose();
    }

    /// <summary>Splits "%(h)s %(t)s …" into constant text and atoms.</summary>
    internal static Action<StringBuilder, Entry>[] Compile(string format)
    {
        var parts = new List<Action<StringBuilder, Entry>>();
        int i = 0;
        while (i < format.Length)
        {
            int open = format.IndexOf("%(", i, StringComparison.Ordinal);
            int close = open < 0 ? -1 : format.IndexOf(")s", open, StringComparison.Ordinal);
            if (open < 0 || close < 0)
            {
                var tail = format[i..];
                parts.Add((sb, _) => sb.Append(tail));
                break;
            }
            if (open > i)
            {
                var text = format[i..open];
                parts.Add((sb, _) => sb.Append(text));
            }
            parts.Add(Atom(format[(open + 2)..close]));
            i = close + 2;
        }
        return parts.ToArray();
    }

    private static Action<StringBuilder, Entry> Atom(string name)
    {
        if (name.StartsWith('{') && name.EndsWith("}i")) { var h = name[1..^2]; return (sb, e) => sb.Append(e.Env.Headers[h] ?? "-"); }
        if (name.StartsWith('{') && name.EndsWith("}e")) { var k = name[1..^2]; return (sb, e) => sb.Append(e.Env[k]?.ToString() ?? "-"); }
        var pid = $"<{Environment.ProcessId}>";
        var inv = CultureInfo.InvariantCulture;
        return name switch
        {
            "h" => (sb, e) => sb.Append(e.Env.RemoteAddr.Length > 0 ? e.Env.RemoteAddr : "-"),
            "l" or "u" => (sb, _) => sb.Append('-'),
            "t" => (sb, _) => sb.Append(LocalTime.Text),
            "r" => (sb, e) => sb.Append(e.Head.Method).Append(' ').Append(e.Head.Target).Append(' ').Append(e.Head.Protocol),
            "m" => (sb, e) => sb.Append(e.Head.Method),
            "U" => (sb, e) => sb.Append(e.Env.PathInfo),
            "q" => (sb, e) => sb.Append(e.Env.QueryString),
            "H" => (sb, e) => sb.Append(e.Head.Protocol),
            "s" => (sb, e) => sb.Append(e.Status),
            "B" => (sb, e) => sb.Append(e.Bytes),
            "b" => (sb, e) => { if (e.Bytes == 0) sb.Append('-'); else sb.Append(e.Bytes); },
            "f" => (sb, e) => sb.Append(e.Env.Headers["Referer"] ?? "-"),
            "a" => (sb, e) => sb.Append(e.Env.Headers["User-Agent"] ?? "-"),
            "T" => (sb, e) => sb.Append((long)Stopwatch.GetElapsedTime(e.Started).TotalSeconds),
            "M" => (sb, e) => sb.Append((long)Stopwatch.GetElapsedTime(e.Started).TotalMilliseconds),
            "D" => (sb, e) => sb.Append((long)Stopwatch.GetElapsedTime(e.Started).TotalMicroseconds),
            "L" => (sb, e) => sb.Append(inv, $"{Stopwatch.GetElapsedTime(e.Started).TotalSeconds:0.000000}"),
            "p" => (sb, _) => sb.Append(pid),
            _ => (sb, _) => sb.Append('-'),
        };
    }

    /// <summary>%(t)s, "[26/Nov/2026:07:05:16 +0000]" as Apache writes it, formatted once a second.</summary>
    private static class LocalTime
    {
        private sealed record Cached(long Second, string Text);
        private static Cached _cached = new(-1, "");

        public static string Text
        {
            get
            {
                var now = DateTimeOffset.Now;
                long second = now.UtcTicks / TimeSpan.TicksPerSecond;
                var cached = Volatile.Read(ref _cached);
                if (cached.Second != second)
                {
                    // -07:00 → -0700, as Apache writes it
                    cached = new Cached(second, now.ToString("[dd/MMM/yyyy:HH:mm:ss zzz]", CultureInfo.InvariantCulture).Remove(25, 1));
                    Volatile.Write(ref _cached, cached);
                }
                return cached.Text;
            }
        }
    }
}
