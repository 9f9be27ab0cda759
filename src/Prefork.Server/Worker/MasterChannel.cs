using System.Text;
using Mono.Unix.Native;

namespace Prefork.Worker;

/// <summary>
/// The worker's end of its pipe to the master (Puma's habit): one line per message, each shorter
/// than PIPE_BUF so writes are atomic.
///   ready                                   app loaded, accepting
///   ping REQUESTS BUSY_MS METHOD PATH        heartbeat; BUSY_MS is -1 when idle
///   bootfail MESSAGE                        the app could not be loaded
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

    /// <summary>Makes a request path safe for one line: no spaces or control characters, bounded.</summary>
    public static string Sanitize(string text)
    {
        var sb = new StringBuilder(Math.Min(text.Length, 200));
        foreach (var c in text.Length > 200 ? text[..200] : text) sb.Append(c <= ' ' || c == 0x7f ? '?' : c);
        return sb.Length == 0 ? "-" : sb.ToString();
    }
}
