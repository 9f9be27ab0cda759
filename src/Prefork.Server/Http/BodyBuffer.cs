using System.Buffers;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Mono.Unix.Native;
using Serilog;
using Prefork.Interop;

namespace Prefork.Http;

/// <summary>
/// One request body as it arrives: in memory up to <see cref="MemoryLimit"/> bytes, and past that
/// in an unnamed temp file in `worker_tmp_dir`, so a worker's memory does not grow with the bodies
/// it receives. One instance per connection, reused for each request.
/// </summary>
/// <remarks>
/// Why a file, filled by <see cref="RequestReader"/>, rather than handing the app a stream of the
/// socket: the reader does no I/O and is shared by sync, threads and epoll, so one mechanism serves
/// all three; the epoll loop never waits on a slow uploader; the threads class never gives a thread
/// to one for the length of its upload (streamed, N slow uploads would hold all N threads, and not
/// being held by slow clients is that class's point); and the app still gets a seekable
/// gateway.input with a known CONTENT_LENGTH, chunked bodies included. nginx (client_body_temp) and
/// Puma (over 112 KiB) do the same. The file is opened with O_TMPFILE: it has no name from birth, so
/// nothing is left behind even when the worker is killed; closing it frees the disk.
/// </remarks>
public sealed class BodyBuffer : IBufferWriter<byte>, IDisposable
{
    /// <summary>
    /// Bodies up to this size stay in memory: forms and JSON documents never touch the disk, and what
    /// a connection keeps between requests stays small. Once in a file, the same array stages chunked
    /// data on its way there.
    /// </summary>
    public const int MemoryLimit = 64 * 1024;
    private const int InitialSize = 4096;

    private readonly string _directory;
    private byte[] _memory = [];
    private SafeFileHandle? _file;

    /// <param name="directory">Where bodies over <see cref="MemoryLimit"/> go (worker_tmp_dir, resolved).</param>
    public BodyBuffer(string directory) => _directory = directory;

    /// <summary>Bytes of the body so far.</summary>
    public long Length { get; private set; }
    /// <summary>The body outgrew memory and lives in a temp file.</summary>
    public bool InFile => _file is not null;

    /// <summary>Appends body bytes (straight to the file once there).</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        if (_file is null)
        {
            if (Length + data.Length <= MemoryLimit)
            {
                Reserve((int)Length + data.Length);
                data.CopyTo(_memory.AsSpan((int)Length));
                Length += data.Length;
                return;
            }
            Spill();
        }
        WriteToFile(data);
    }

    // IBufferWriter, for the chunked decoder: in memory, the free space; in a file, the staging array.
    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        sizeHint = Math.Max(sizeHint, 1);
        if (_file is null && Length + sizeHint > MemoryLimit) Spill();
        if (_file is null)
        {
            Reserve((int)Length + sizeHint);
            return _memory.AsMemory((int)Length);
        }
        if (_memory.Length < Math.Max(sizeHint, MemoryLimit)) _memory = new byte[Math.Max(sizeHint, MemoryLimit)];
        return _memory;
    }

    public void Advance(int count)
    {
        if (_file is null) Length += count;
        else WriteToFile(_memory.AsSpan(0, count));
    }

    /// <summary>Reads body bytes from <paramref name="position"/>; 0 at the end.</summary>
    public int Read(long position, Span<byte> destination)
    {
        int n = (int)Math.Clamp(Length - position, 0, destination.Length);
        if (n == 0) return 0;
        if (_file is not null) return RandomAccess.Read(_file, destination[..n], position);
        _memory.AsSpan((int)position, n).CopyTo(destination);
        return n;
    }

    /// <summary>The body, when it is in memory (<see cref="InFile"/> is false).</summary>
    public ReadOnlySpan<byte> InMemory => _file is null ? _memory.AsSpan(0, (int)Length) : throw new InvalidOperationException("the body is in a file");

    /// <summary>Forgets the body; its temp file, if any, is closed, which frees its disk space.</summary>
    public void Clear()
    {
        Length = 0;
        if (_file is null) return;
        _file.Dispose();
        _file = null;
    }

    public void Dispose() => Clear();

    private void Reserve(int needed)
    {
        if (_memory.Length >= needed) return;
        var bigger = new byte[Math.Min(MemoryLimit, Math.Max(needed, Math.Max(InitialSize, _memory.Length * 2)))];
        _memory.AsSpan(0, (int)Length).CopyTo(bigger);
        _memory = bigger;
    }

    /// <summary>Moves the body from memory to a new temp file.</summary>
    private void Spill()
    {
        _file = OpenTempFile(_directory, out var error) ?? throw Failed(error!);
        long inMemory = Length;
        Length = 0;
        WriteToFile(_memory.AsSpan(0, (int)inMemory));
    }

    private void WriteToFile(ReadOnlySpan<byte> data)
    {
        try
        {
            RandomAccess.Write(_file!, data, Length);
        }
        catch (IOException e)
        {
            throw Failed("writing failed: " + e.Message); // ENOSPC, EDQUOT, EIO…
        }
        Length += data.Length;
    }

    private HttpError Failed(string why)
    {
        Log.Error("Cannot keep a request body over {Limit} bytes in worker_tmp_dir {Directory}: {Reason}", MemoryLimit, _directory, why);
        return HttpError.BodyNotStored(why);
    }

    /// <summary>
    /// An unnamed file in <paramref name="directory"/> (O_TMPFILE), or, where the file system does
    /// not support that, one created and unlinked at once. Null, with the reason, when neither works.
    /// </summary>
    public static SafeFileHandle? OpenTempFile(string directory, out string? error)
    {
        // Native: Mono.Unix's OpenFlags has no O_TMPFILE.
        int fd = Native.open(directory, Native.O_TMPFILE | Native.O_RDWR | Native.O_CLOEXEC, 0x180 /* 0600 */);
        if (fd < 0 && Native.Errno is Native.EOPNOTSUPP or Native.EISDIR) fd = CreateUnlinked(directory);
        if (fd < 0)
        {
            error = $"{directory}: {Marshal.GetPInvokeErrorMessage(Native.Errno)}";
            return null;
        }
        error = null;
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>The fallback of <see cref="OpenTempFile"/>: a new file under a random name, unlinked before use; -1 with errno set on failure.</summary>
    internal static int CreateUnlinked(string directory)
    {
        for (int attempt = 0; ; attempt++)
        {
            var path = Path.Combine(directory, $"prefork-body-{Environment.ProcessId}-{Random.Shared.Next():x8}");
            int fd = Syscall.open(path, OpenFlags.O_CREAT | OpenFlags.O_EXCL | OpenFlags.O_RDWR | OpenFlags.O_CLOEXEC,
                FilePermissions.S_IRUSR | FilePermissions.S_IWUSR);
            if (fd >= 0)
            {
                Syscall.unlink(path);
                return fd;
            }
            if (Native.Errno != Native.EEXIST || attempt == 10) return -1;
        }
    }

    /// <summary>Null when a temp file can be made in <paramref name="directory"/>, else why not (checked at worker boot).</summary>
    public static string? CheckDirectory(string directory)
    {
        using var file = OpenTempFile(directory, out var error);
        return error;
    }
}
