using Prefork.Config;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace Prefork.Logging;

/// <summary>
/// The error log (Serilog): level from `loglevel`, to stderr or `errorlog`'s file. Every line
/// carries the pid and the role (master or worker index). Re-created on USR1 so logrotate works.
/// </summary>
public static class Logging
{
    private const string Template = "[{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz}] [{Pid}] [{Level:u4}] {Role}{Message:lj}{NewLine}{Exception}";

    public static void Configure(GatewayConfig config, string role)
    {
        var level = config.LogLevel switch
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
        lc = config.ErrorLog == "-"
            ? lc.WriteTo.Console(outputTemplate: Template, standardErrorFromLevel: LogEventLevel.Verbose)
            : lc.WriteTo.File(Path.GetFullPath(config.ErrorLog, config.BaseDirectory), outputTemplate: Template, shared: true, flushToDiskInterval: TimeSpan.FromSeconds(1));
        var old = Log.Logger;
        Log.Logger = lc.CreateLogger();
        (old as IDisposable)?.Dispose();
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
