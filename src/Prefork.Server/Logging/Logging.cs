using Prefork.Config;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Display;

namespace Prefork.Logging;

/// <summary>
/// The error log (Serilog): level from `loglevel`, to stderr or `errorlog`'s file. Every line
/// carries the pid and the role (master or worker index). Re-created on USR1 so logrotate works:
/// the new logger opens the path anew, the old one closes its file.
/// </summary>
public static class Logging
{
    // {Pid} is the line's own process: a message must not name a property Pid (it would replace it).
    private const string Template = "[{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz}] [{Pid}] [{Level:u4}] {Role}{Message:lj}{NewLine}{Exception}";

    public static void Configure(GatewayConfig config, string role)
    {
        var level = config.Get(Settings.LogLevel) switch
        {
            "debug" => LogEventLevel.Debug,
            "warning" => LogEventLevel.Warning,
            "error" => LogEventLevel.Error,
            "critical" => LogEventLevel.Fatal,
            _ => LogEventLevel.Information,
        };
        var lc = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .Enrich.WithProperty("Pid", Environment.ProcessId)
            .Enrich.WithProperty("Role", role.Length == 0 ? "" : role + " ");
        // Master and workers share stderr or append to one file: each event leaves in one write(2).
        var path = config.Get(Settings.ErrorLog) == "-" ? "-" : Path.GetFullPath(config.Get(Settings.ErrorLog), config.BaseDirectory);
        string? unopened = null;
        LogFile file;
        try { file = LogFile.Open(path, standardFd: 2); }
        catch (IOException e) { unopened = e.Message; file = LogFile.Open("-", standardFd: 2); } // never die for want of a log
        var sink = new LineSink(file, new MessageTemplateTextFormatter(Template));
        // A log line must need no new fd: out of fds (accept failing with EMFILE) is when a worker
        // most needs to say so. What formatting loads lazily (the local time zone, read from
        // /usr/share/zoneinfo, which out of fds left every line of the worker's life in UTC) is
        // loaded now, by formatting one event that is not written.
        sink.WarmUp();
        lc = lc.WriteTo.Sink(sink);
        var old = Log.Logger;
        Log.Logger = lc.CreateLogger();
        (old as IDisposable)?.Dispose();
        if (unopened is not null) Log.Error("Logging to stderr instead: {Reason}", unopened);
    }
}

/// <summary>
/// Formats each event (its line, and its exception's lines if any) into a reused buffer and writes
/// it whole with <see cref="LogFile"/>, so lines from the master and workers never interleave.
/// A write that fails drops the event: the error log has nowhere to report its own failures.
/// </summary>
internal sealed class LineSink(LogFile file, ITextFormatter formatter) : ILogEventSink, IDisposable
{
    private readonly StringWriter _text = new(System.Globalization.CultureInfo.InvariantCulture);
    private byte[] _bytes = new byte[4096];
    private bool _closed;

    public void Emit(LogEvent logEvent)
    {
        lock (_text)
        {
            if (_closed) return; // a thread still held the logger USR1 replaced
            file.Write(Format(logEvent));
        }
    }

    /// <summary>Formats an event (the time now, a property, an exception) without writing it: see <see cref="Logging.Configure"/>.</summary>
    public void WarmUp()
    {
        var template = new Serilog.Parsing.MessageTemplateParser().Parse("warm-up {Number}");
        var warmUp = new LogEvent(DateTimeOffset.Now, LogEventLevel.Warning, new InvalidOperationException("warm-up"), template,
            [new LogEventProperty("Number", new ScalarValue(1))]);
        lock (_text) Format(warmUp);
    }

    private ReadOnlySpan<byte> Format(LogEvent logEvent)
    {
        var sb = _text.GetStringBuilder();
        sb.Clear();
        formatter.Format(logEvent, _text);
        int max = System.Text.Encoding.UTF8.GetMaxByteCount(sb.Length);
        if (_bytes.Length < max) _bytes = new byte[max];
        int length = System.Text.Encoding.UTF8.GetBytes(sb.ToString(), _bytes);
        return _bytes.AsSpan(0, length);
    }

    public void Dispose()
    {
        lock (_text)
        {
            _closed = true;
            file.Dispose();
        }
    }
}

/// <summary>A TextWriter onto the error log: what an application writes to gateway.errors.</summary>
public sealed class ErrorLogWriter : TextWriter
{
    private readonly System.Text.StringBuilder _line = new();
    public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

    public override void Write(char value)
    {
        lock (_line)
        {
            if (value == '\n') { Log.Error("{AppMessage}", _line.ToString()); _line.Clear(); }
            else if (value != '\r') _line.Append(value);
        }
    }
}
