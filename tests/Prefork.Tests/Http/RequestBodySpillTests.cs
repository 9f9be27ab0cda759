using System.Text;
using Prefork.Http;

namespace Prefork.Tests.Http;

/// <summary>
/// Bodies over <see cref="BodyBuffer.MemoryLimit"/> go to an unnamed temp file in the reader's
/// directory (a fresh one per test, so its open files can be counted in /proc/self/fd).
/// </summary>
public sealed class RequestBodySpillTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("prefork-spill-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Descriptors of this process open on files in the test's directory (O_TMPFILE ones read "dir/#inode (deleted)").</summary>
    private int OpenFilesInDir() => Directory.GetFiles("/proc/self/fd")
        .Count(fd => (TryLinkTarget(fd) ?? "").StartsWith(_dir + "/", StringComparison.Ordinal));

    private static string? TryLinkTarget(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (IOException) { return null; } // closed meanwhile
    }

    private static byte[] Pattern(int length) => Enumerable.Range(0, length).Select(i => (byte)(i * 7 + i / 251)).ToArray();

    /// <summary>Feeds <paramref name="bytes"/> in pieces of <paramref name="piece"/>, as recv would; true when a request was taken.</summary>
    private static bool Feed(RequestReader reader, ReadOnlySpan<byte> bytes, int piece = 10_000)
    {
        bool taken = false;
        while (!bytes.IsEmpty)
        {
            var space = reader.GetReadSpace();
            int n = Math.Min(Math.Min(piece, space.Length), bytes.Length);
            bytes[..n].CopyTo(space);
            reader.Advance(n);
            bytes = bytes[n..];
            if (reader.TryTakeRequest()) taken = true;
        }
        return taken;
    }

    private static byte[] ReadAll(Stream s)
    {
        var ms = new MemoryStream();
        var buffer = new byte[5000];
        int n;
        while ((n = s.Read(buffer, 0, buffer.Length)) > 0) ms.Write(buffer, 0, n);
        return ms.ToArray();
    }

    private static byte[] Head(string head) => Encoding.ASCII.GetBytes(head);

    [Fact]
    public void A_body_over_the_memory_limit_is_kept_in_a_temp_file_and_reads_back_whole_and_seekable()
    {
        var body = Pattern(1024 * 1024 + 3);
        var reader = new RequestReader(HttpLimits.Default, _dir);
        Assert.True(Feed(reader, [.. Head($"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: {body.Length}\r\n\r\n"), .. body]));

        Assert.Equal(1, OpenFilesInDir());
        Assert.Empty(Directory.GetFileSystemEntries(_dir)); // unnamed: nothing to leave behind
        Assert.Equal(body.Length, reader.BodyLength);
        var input = reader.Body;
        Assert.True(input.CanSeek);
        Assert.Equal(body.Length, input.Length);
        Assert.Equal(body, ReadAll(input));

        input.Seek(700_001, SeekOrigin.Begin);
        Assert.Equal(body[700_001], (byte)input.ReadByte());
        input.Seek(-10, SeekOrigin.End);
        Assert.Equal(body[^10..], ReadAll(input));
        input.Position = 0;
        var copy = new MemoryStream();
        input.CopyTo(copy);
        Assert.Equal(body, copy.ToArray());

        reader.Reset(); // the connection closed
        Assert.Equal(0, OpenFilesInDir());
    }

    [Fact]
    public void A_chunked_body_over_the_memory_limit_is_kept_whole_with_its_length()
    {
        var body = Pattern(300_000);
        var wire = new MemoryStream();
        wire.Write(Head("POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
        int[] sizes = [1, 65_535, 2, 70_000, 100_000];
        int at = 0;
        foreach (var size in sizes.Append(body.Length - sizes.Sum()))
        {
            wire.Write(Head($"{size:x}\r\n"));
            wire.Write(body, at, size);
            wire.Write("\r\n"u8);
            at += size;
        }
        wire.Write("0\r\nX-Sum: 1\r\n\r\n"u8);
        var reader = new RequestReader(HttpLimits.Default, _dir);

        Assert.True(Feed(reader, wire.ToArray(), piece: 3000));

        Assert.Equal(1, OpenFilesInDir());
        Assert.Equal(body.Length, reader.BodyLength);
        Assert.Equal(body.Length, reader.Body.Length);
        Assert.Equal(body, ReadAll(reader.Body));
        Assert.Equal("1", reader.Trailers!["X-Sum"]);
        reader.Reset();
        Assert.Equal(0, OpenFilesInDir());
    }

    [Fact]
    public void A_small_body_stays_in_memory_and_the_next_request_frees_the_previous_file()
    {
        var big = Pattern(200_000);
        var reader = new RequestReader(HttpLimits.Default, _dir);
        Assert.True(Feed(reader, [.. Head($"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {big.Length}\r\n\r\n"), .. big]));
        Assert.Equal(1, OpenFilesInDir());

        // Asking for the next request means the last one was answered: its file goes, even before more bytes came.
        Assert.False(reader.TryTakeRequest());
        Assert.Equal(0, OpenFilesInDir());

        var small = Pattern(BodyBuffer.MemoryLimit);
        Assert.True(Feed(reader, [.. Head($"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: {small.Length}\r\n\r\n"), .. small]));
        Assert.Equal("/b", reader.Head.Target);
        Assert.Equal(0, OpenFilesInDir());
        Assert.Equal(small, ReadAll(reader.Body));
    }

    [Fact]
    public void Small_bodies_allocate_nothing_per_request_once_warm()
    {
        var body = Pattern(BodyBuffer.MemoryLimit);
        byte[] lengthDelimited = [.. Head($"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {body.Length}\r\n\r\n"), .. body];
        byte[] chunked = [.. Head("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n"), .. body.AsSpan(0, 1000), .. "\r\n0\r\n\r\n"u8];
        var reader = new RequestReader(HttpLimits.Default, _dir);
        var sink = new byte[4096];
        void Serve(byte[] wire)
        {
            Assert.True(Feed(reader, wire));
            while (reader.Body.Read(sink) > 0) { }
        }
        for (int i = 0; i < 3; i++) { Serve(lengthDelimited); Serve(chunked); } // warm up: buffers grown, strings remembered

        Assert.Equal(0, Allocated(() => Serve(chunked)));
        // Parsing a head with Content-Length allocates on its own (RequestParser's business): the body adds nothing.
        var head = new RequestHead();
        var lengthHead = lengthDelimited.AsSpan(0, lengthDelimited.Length - body.Length).ToArray();
        Action parseOnly = () => RequestParser.TryParseHead(lengthHead, head, HttpLimits.Default, out _);
        Allocated(parseOnly); // warm
        long parsing = Allocated(parseOnly), serving = Allocated(() => Serve(lengthDelimited));
        Assert.True(serving <= parsing, $"{serving} bytes serving 100 requests, {parsing} parsing their heads");
        Assert.Equal(0, OpenFilesInDir());
    }

    /// <summary>Bytes this thread allocates running <paramref name="action"/> 100 times.</summary>
    private static long Allocated(Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Fact]
    public void Limit_request_body_is_checked_before_a_file_is_made_and_as_a_chunked_body_grows()
    {
        var limits = HttpLimits.Default with { Body = 200_000 };
        var reader = new RequestReader(limits, _dir);
        var e = Assert.Throws<HttpError>(() => Feed(reader, Head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200001\r\n\r\n")));
        Assert.Equal(413, e.Status);
        Assert.Equal(0, OpenFilesInDir());

        reader = new RequestReader(limits, _dir);
        var chunk = Pattern(120_000);
        Assert.False(Feed(reader, [.. Head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1d4c0\r\n"), .. chunk, .. "\r\n"u8]));
        Assert.Equal(1, OpenFilesInDir());
        // The next chunk's size line takes the total over the limit: refused before its data arrives.
        e = Assert.Throws<HttpError>(() => Feed(reader, "1d4c0\r\n"u8));
        Assert.Equal(413, e.Status);
        reader.Reset();
        Assert.Equal(0, OpenFilesInDir());
    }

    [Fact]
    public void An_unusable_directory_refuses_a_large_body_with_500_and_small_bodies_still_work()
    {
        var reader = new RequestReader(HttpLimits.Default, Path.Combine(_dir, "missing"));
        var e = Assert.Throws<HttpError>(() =>
            Feed(reader, [.. Head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"), .. Pattern(100_000)]));
        Assert.Equal(500, e.Status);
        Assert.Equal(nameof(HttpError.BodyNotStored), e.Name);
        Assert.Contains("No such file or directory", e.Message);

        reader.Reset();
        Assert.True(Feed(reader, [.. Head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"), .. "hello"u8]));
        Assert.Equal("hello", Encoding.ASCII.GetString(ReadAll(reader.Body)));
        Assert.NotNull(BodyBuffer.CheckDirectory(Path.Combine(_dir, "missing")));
        Assert.Null(BodyBuffer.CheckDirectory(_dir));
    }

    [Fact]
    public void Where_O_TMPFILE_is_refused_a_file_is_created_and_unlinked_at_once()
    {
        int fd = BodyBuffer.CreateUnlinked(_dir);
        Assert.True(fd >= 0);
        using var file = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
        RandomAccess.Write(file, "abc"u8, 0);
        var back = new byte[3];
        Assert.Equal(3, RandomAccess.Read(file, back, 0));
        Assert.Equal("abc"u8.ToArray(), back);
        Assert.Equal(1, OpenFilesInDir());
    }
}
