using System.Diagnostics;
using System.Text;
using Prefork.Tests.Support;
using Xunit.Abstractions;

namespace Prefork.Tests.Integration;

/// <summary>Large request bodies go to a temp file (worker_tmp_dir), not the worker's memory, in every worker class.</summary>
public sealed class RequestBodyTests(ITestOutputHelper output)
{
    public static TheoryData<string> Classes => WorkerClassTests.Classes;

    private const int PieceSize = 1024 * 1024, Pieces = 100; // 100 MiB: limit_request_body's default
    private const int Uploads = 16;
    private const long MaxPeakRssKiB = 150 * 1024;

    [Theory, MemberData(nameof(Classes))]
    public async Task Sixteen_concurrent_100_MiB_uploads_are_answered_whole_and_the_worker_stays_under_150_MB(string workerClass)
    {
        using var server = WorkerClassTests.Start(workerClass);
        int workerPid = server.WaitForWorkers(1)[0];
        var piece = Enumerable.Range(0, PieceSize).Select(i => (byte)(i * 31 + i / 4093)).ToArray();
        var expected = $"{(long)PieceSize * Pieces} {Checksum(piece, Pieces):x16}\n";

        var clock = Stopwatch.StartNew();
        // Blocking clients on threads of their own: sync serves one upload at a time, the rest queue.
        var uploads = Enumerable.Range(0, Uploads)
            .Select(i => Task.Factory.StartNew(() => Upload(server.Port, piece, chunked: i == 0), TaskCreationOptions.LongRunning))
            .ToArray();
        var answers = await Task.WhenAll(uploads).WaitAsync(TimeSpan.FromSeconds(240));
        clock.Stop();

        foreach (var answer in answers)
        {
            Assert.Equal(200, answer.Status);
            Assert.Equal(expected, answer.BodyText);
        }
        Assert.Equal([workerPid], server.WorkerPids());
        long peakKiB = PeakRssKiB(workerPid);
        output.WriteLine($"{workerClass}: {Uploads} x 100 MiB in {clock.Elapsed.TotalSeconds:F1} s, worker peak RSS (VmHWM) {peakKiB / 1024} MiB");
        Assert.True(peakKiB < MaxPeakRssKiB, $"the {workerClass} worker's peak RSS was {peakKiB / 1024} MiB");
    }

    [Theory, MemberData(nameof(Classes))]
    public async Task A_large_body_the_app_does_not_read_is_skipped_whole_before_the_next_request(string workerClass)
    {
        using var server = WorkerClassTests.Start(workerClass);
        using var socket = RawHttp.Connect(server.Port);
        var reader = new ResponseReader(socket);
        // A body that looks like requests: were any of it parsed as the next request, /crash would answer 500.
        var fake = "GET /crash HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray();
        var body = Enumerable.Repeat(fake, 1024 * 1024 / fake.Length + 1).SelectMany(b => b).ToArray();
        var sending = Task.Factory.StartNew(() =>
        {
            socket.Send(Encoding.ASCII.GetBytes($"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {body.Length}\r\n\r\n"));
            socket.Send(body);
            socket.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        }, TaskCreationOptions.LongRunning);

        var first = reader.Read();
        Assert.Equal(200, first.Status);
        Assert.Equal("Hello, World!", first.BodyText);
        var second = reader.Read();
        Assert.Equal(200, second.Status);
        Assert.Equal("ok\n", second.BodyText);
        Assert.False(second.Closed);
        await sending.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Theory, MemberData(nameof(Classes))]
    public void A_missing_worker_tmp_dir_refuses_large_bodies_with_500_and_the_worker_goes_on_serving(string workerClass)
    {
        using var server = WorkerClassTests.Start(workerClass, "worker_tmp_dir = \"no-such-dir\""); // relative to the config file
        int workerPid = server.WaitForWorkers(1)[0];
        server.WaitForLog("worker_tmp_dir is unusable", TimeSpan.FromSeconds(30));

        using (var socket = RawHttp.Connect(server.Port))
        {
            // Past the 64 KiB kept in memory: the rest has nowhere to go.
            socket.Send(Encoding.ASCII.GetBytes("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"));
            socket.Send(new byte[200 * 1024]);
            var refused = new ResponseReader(socket).Read();
            Assert.Equal(500, refused.Status);
            Assert.True(refused.Closed);
        }
        server.WaitForLog("Cannot keep a request body", TimeSpan.FromSeconds(30));

        var small = RawHttp.Send(server.Port, "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello");
        Assert.Equal(200, small.Status);
        Assert.StartsWith("5 ", small.BodyText);
        Assert.Equal(200, server.Get("/").Status);
        Assert.Equal([workerPid], server.WorkerPids());
    }

    private static HttpResponse Upload(int port, byte[] piece, bool chunked)
    {
        using var socket = RawHttp.Connect(port, timeoutMs: 240_000);
        var framing = chunked ? "Transfer-Encoding: chunked" : $"Content-Length: {(long)piece.Length * Pieces}";
        socket.Send(Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{framing}\r\n\r\n"));
        var chunkHead = Encoding.ASCII.GetBytes($"{piece.Length:x}\r\n");
        for (int i = 0; i < Pieces; i++)
        {
            if (chunked) socket.Send(chunkHead);
            socket.Send(piece);
            if (chunked) socket.Send("\r\n"u8.ToArray());
        }
        if (chunked) socket.Send("0\r\n\r\n"u8.ToArray());
        return new ResponseReader(socket).Read();
    }

    /// <summary>The sample app's /upload sum (a += byte; b += a) of <paramref name="piece"/> repeated <paramref name="times"/> times.</summary>
    private static ulong Checksum(byte[] piece, int times)
    {
        ulong a = 0, b = 0;
        for (int t = 0; t < times; t++)
            foreach (var x in piece)
            {
                a += x;
                b += a;
            }
        return b;
    }

    private static long PeakRssKiB(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }
}
