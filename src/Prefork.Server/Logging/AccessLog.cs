using System.Diagnostics;
using System.Globalization;
using System.Text;
using Prefork.Config;
using Prefork.Gateway;
using Prefork.Http;

namespace Prefork.Logging;

/// <summary>
/// The access log in Gunicorn's format language (Apache combined by default). The format is
/// compiled once into a list of parts; each request appends its line to a buffered writer that a
/// timer flushes, so logging costs no syscall per request.
/// </summary>
public sealed class AccessLog : IDisposable
{
    private readonly Func<Entry, string>[] _parts;
    private readonly string _path;
    private TextWriter _out;
    private readonly Timer _flusher;
    private readonly Lock _lock = new();

    public readonly record struct Entry(RequestEnvironment Env, RequestHead Head, int Status, long Bytes, long Started);

    public AccessLog(GatewayConfig config)
    {
        _parts = Compile(config.AccessLogFormat);
        _path = config.AccessLog == "-" ? "-" : Path.GetFullPath(config.AccessLog, config.BaseDirectory);
        _out = Open();
        _flusher = new Timer(_ => Flush(), null, 1000, 1000);
    }

    private TextWriter Open() => _path == "-"
        ? new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 64 * 1024) { AutoFlush = false }
        : new StreamWriter(new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete), new UTF8Encoding(false), 64 * 1024);

    public void Write(RequestEnvironment env, RequestHead head, int status, long bytes, long started)
    {
        var entry = new Entry(env, head, status, bytes, started);
        var sb = new StringBuilder(160);
        foreach (var part in _parts) sb.Append(part(entry));
        lock (_lock) _out.WriteLine(sb);
    }

    public void Flush()
    {
        lock (_lock) _out.Flush();
    }

    /// <summary>For USR1: after logrotate moved the file, write to a new one at the same path.</summary>
    public void Reopen()
    {
        lock (_lock)
        {
            _out.Flush();
            if (_path == "-") return;
            _out.Dispose();
            _out = Open();
        }
    }

    public void Dispose()
    {
        _flusher.Dispose();
        lock (_lock) _out.Dispose();
    }

    /// <summary>Splits "%(h)s %(t)s …" into constant text and atoms.</summary>
    internal static Func<Entry, string>[] Compile(string format)
    {
        var parts = new List<Func<Entry, string>>();
        int i = 0;
        while (i < format.Length)
        {
            int open = format.IndexOf("%(", i, StringComparison.Ordinal);
            int close = open < 0 ? -1 : format.IndexOf(")s", open, StringComparison.Ordinal);
            if (open < 0 || close < 0)
            {
                var tail = format[i..];
                parts.Add(_ => tail);
                break;
            }
            if (open > i)
            {
                var text = format[i..open];
                parts.Add(_ => text);
            }
            parts.Add(Atom(format[(open + 2)..close]));
            i = close + 2;
        }
        return parts.ToArray();
    }

    private static Func<Entry, string> Atom(string name)
    {
        if (name.StartsWith('{') && name.EndsWith("}i")) { var h = name[1..^2]; return e => e.Env.Headers[h] ?? "-"; }
        if (name.StartsWith('{') && name.EndsWith("}e")) { var k = name[1..^2]; return e => e.Env[k]?.ToString() ?? "-"; }
        return name switch
        {
            "h" => e => e.Env.RemoteAddr.Length > 0 ? e.Env.RemoteAddr : "-",
            "l" => _ => "-",
            "u" => _ => "-",
            "t" => _ => DateTimeOffset.Now.ToString("[dd/MMM/yyyy:HH:mm:ss zzz]", CultureInfo.InvariantCulture).Remove(25, 1), // -07:00 → -0700, as Apache writes it
            "r" => e => $"{e.Head.Method} {e.Head.Target} {e.Head.Protocol}",
            "m" => e => e.Head.Method,
            "U" => e => e.Env.PathInfo,
            "q" => e => e.Env.QueryString,
            "H" => e => e.Head.Protocol,
            "s" => e => e.Status.ToString(CultureInfo.InvariantCulture),
            "B" => e => e.Bytes.ToString(CultureInfo.InvariantCulture),
            "b" => e => e.Bytes == 0 ? "-" : e.Bytes.ToString(CultureInfo.InvariantCulture),
            "f" => e => e.Env.Headers["Referer"] ?? "-",
            "a" => e => e.Env.Headers["User-Agent"] ?? "-",
            "T" => e => ((long)Stopwatch.GetElapsedTime(e.Started).TotalSeconds).ToString(CultureInfo.InvariantCulture),
            "M" => e => ((long)Stopwatch.GetElapsedTime(e.Started).TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            "D" => e => ((long)Stopwatch.GetElapsedTime(e.Started).TotalMicroseconds).ToString(CultureInfo.InvariantCulture),
            "L" => e => Stopwatch.GetElapsedTime(e.Started).TotalSeconds.ToString("0.000000", CultureInfo.InvariantCulture),
            "p" => _ => $"<{Environment.ProcessId}>",
            _ => _ => "-",
        };
    }
}
