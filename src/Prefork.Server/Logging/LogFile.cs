using System.Runtime.InteropServices;
using Mono.Unix.Native;
using Prefork.Interop;

namespace Prefork.Logging;

/// <summary>
/// A log destination that takes whole lines and hands each to the kernel in one write(2) on an
/// O_APPEND descriptor, so lines from many threads and processes never tear: on a regular file an
/// O_APPEND write is atomic with respect to other appenders, and on a pipe a write of up to
/// PIPE_BUF (4096) bytes is atomic. Nothing is buffered in the process, so nothing is lost when a
/// worker is killed, and no flush can cut a line in two.
/// A failed write (ENOSPC, EPIPE, EIO…) drops the line and returns false; it never throws.
/// </summary>
internal sealed unsafe class LogFile : IDisposable
{
    private const int EINTR = 4;

    private readonly string? _path;
    private readonly int _fd;
    private long _dropped, _shortWrites;

    /// <summary>Lines lost to write errors, and writes the kernel cut short (then completed) since the start.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);
    public long ShortWrites => Interlocked.Read(ref _shortWrites);

    /// <summary>The errno of the last failed write (for the report of a dropped line).</summary>
    public int LastError { get; private set; }

    private LogFile(string? path, int fd)
    {
        _path = path;
        _fd = fd;
    }

    /// <summary>
    /// "-" is the inherited <paramref name="standardFd"/> (1 or 2); anything else a file appended to,
    /// created if missing (and its folder). Throws IOException when the file cannot be opened.
    /// </summary>
    public static LogFile Open(string path, int standardFd)
    {
        if (path != "-") return new LogFile(path, OpenAppend(path));
        AppendIfRegularFile(standardFd);
        return new LogFile(null, standardFd);
    }

    /// <summary>
    /// `prefork > file` gives every process the same open file without O_APPEND. One shared offset
    /// already keeps our own writes in order, but anyone else writing the file (a second `>>`
    /// writer, logrotate's copytruncate) would be overwritten, or leave a hole after a truncate.
    /// O_APPEND on that open file fixes both and changes nothing for its other holders, who only
    /// ever wrote at its end. Pipes and terminals have no offset: left as they are.
    /// </summary>
    private static void AppendIfRegularFile(int fd)
    {
        if (Syscall.fstat(fd, out var st) != 0 || (st.st_mode & FilePermissions.S_IFMT) != FilePermissions.S_IFREG) return;
        int flags = Syscall.fcntl(fd, FcntlCommand.F_GETFL); // the native flags, untranslated, both ways
        if (flags >= 0 && (flags & (int)OpenFlags.O_APPEND) == 0) Syscall.fcntl(fd, FcntlCommand.F_SETFL, flags | (int)OpenFlags.O_APPEND);
    }

    private static int OpenAppend(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!); // as Serilog's file sink did: "logs/error.log" needs no mkdir
        int fd;
        do fd = Syscall.open(path, OpenFlags.O_WRONLY | OpenFlags.O_CREAT | OpenFlags.O_APPEND | OpenFlags.O_CLOEXEC,
                FilePermissions.DEFFILEMODE /* 0666, less the umask */);
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);
        if (fd < 0) throw new IOException($"cannot open log file {path}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        return fd;
    }

    /// <summary>
    /// Writes one whole line (its bytes end with '\n') in one write(2). The kernel may in theory
    /// write less (a line longer than PIPE_BUF on a pipe, a signal mid-write): then the rest follows
    /// at once, and it is counted. Returns false, and drops the line, when a write fails.
    /// </summary>
    public bool Write(ReadOnlySpan<byte> line)
    {
        fixed (byte* start = line)
        {
            byte* p = start;
            nint left = line.Length;
            while (left > 0)
            {
                nint n = Native.write(_fd, p, left); // every access log line: the allocation-free LibraryImport
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == EINTR) continue;
                    LastError = errno;
                    Interlocked.Increment(ref _dropped);
                    return false;
                }
                if (n < left) Interlocked.Increment(ref _shortWrites);
                p += n;
                left -= n;
            }
        }
        return true;
    }

    /// <summary>
    /// For USR1, after logrotate moved the file: open the path anew and put it in place of the old
    /// descriptor with dup3, atomically, so a thread writing meanwhile writes to one file or the
    /// other, never to a closed or reused descriptor. A file that cannot be opened keeps the old one.
    /// </summary>
    public void Reopen()
    {
        if (_path is null) return;
        int fresh = OpenAppend(_path);
        int done = Native.dup3(fresh, _fd, Native.O_CLOEXEC); // Mono.Unix has dup2 only, which would drop FD_CLOEXEC
        int errno = Marshal.GetLastPInvokeError();
        Syscall.close(fresh);
        if (done < 0) throw new IOException($"cannot reopen log file {_path}: {Marshal.GetPInvokeErrorMessage(errno)}");
    }

    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    public void Dispose()
    {
        if (_path is not null) Syscall.close(_fd);
    }
}
