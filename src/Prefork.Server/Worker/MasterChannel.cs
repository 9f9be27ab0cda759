using System.Text;
using Mono.Unix.Native;

namespace Prefork.Worker;

/// <summary>
/// The worker's end of its pipe to the master (Puma's habit): one line per message, each shorter
/// than PIPE_BUF so writes are atomic.
///   ready                                   app loaded, accepting
///   ping REQUESTS BUSY_MS METHOD PATH        heartbeat; BUSY_MS is -1 when idle
///   bootfail REASON                         the worker cannot boot (config, app, start-up), then it exits
/// </summary>
public sealed class MasterChannel(int fd)
{
    /// <summary>False when the master is gone (EPIPE).</summary>
    public unsafe bool Send(string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message.Length > 1000 ? message[..1000] : message);
        var line = new byte[bytes.Length + 1];
        bytes.CopyTo(line, 0);
        line[^1] = (byte)'\n';
        fixed (byte* p = line)
            return Syscall.write(fd, p, (ulong)line.Length) == line.Length;
    }

    /// <summary>Longest boot failure reason sent (the rest is in the worker's log).</summary>
    public const int MaxReasonLength = 500;

    /// <summary>True once the worker said it is ready: from then on, a failure is no boot failure.</summary>
    public bool ReadyReported { get; private set; }

    public void ReportReady()
    {
        Send("ready");
        ReadyReported = true;
    }

    /// <summary>Tells the master why this worker cannot boot, as one bounded line; it logs it with its backoff.</summary>
    public bool ReportBootFailure(string reason) => Send("bootfail " + OneLine(reason).TrimEnd('.')); // the master's line goes on

    /// <summary>Makes a request path safe for one line: no spaces or control characters, bounded.</summary>
    public static string Sanitize(string text) => Clean(text, 200, c => c <= ' ' || c == 0x7f) is { Length: > 0 } clean ? clean : "-";

    /// <summary>Makes text (an exception's message) one line: line breaks shown as " | ", other control characters as '?', bounded.</summary>
    public static string OneLine(string text) => Clean(text.ReplaceLineEndings(" | "), MaxReasonLength, char.IsControl);

    private static string Clean(string text, int maxLength, Func<char, bool> replace)
    {
        var sb = new StringBuilder(Math.Min(text.Length, maxLength));
        foreach (var c in text.Length > maxLength ? text[..maxLength] : text) sb.Append(replace(c) ? '?' : c);
        return sb.ToString();
    }
}
