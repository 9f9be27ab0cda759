using System.Text;
using Mono.Unix.Native;
using Prefork.Protocol;

namespace Prefork.Worker;

/// <summary>The worker's end of its pipe to the master: one <see cref="WorkerMessage"/> per line.</summary>
public sealed class MasterChannel(int fd)
{
    /// <summary>False when the master is gone (EPIPE).</summary>
    public unsafe bool Send(WorkerMessage message)
    {
        var text = message.Format();
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length >= WorkerMessage.MaxLineBytes) bytes = bytes[..(WorkerMessage.MaxLineBytes - 1)]; // one atomic write (PIPE_BUF)
        var line = new byte[bytes.Length + 1];
        bytes.CopyTo(line, 0);
        line[^1] = (byte)'\n';
        fixed (byte* p = line)
            return Syscall.write(fd, p, (ulong)line.Length) == line.Length;
    }

    /// <summary>True once the worker said it is ready: from then on, a failure is no boot failure.</summary>
    public bool ReadyReported { get; private set; }

    public void ReportReady()
    {
        Send(new WorkerMessage.Ready());
        ReadyReported = true;
    }

    /// <summary>Tells the master why this worker cannot boot, as one bounded line; it logs it with its backoff.</summary>
    public bool ReportBootFailure(string reason) => Send(new WorkerMessage.BootFailure(reason));
}
