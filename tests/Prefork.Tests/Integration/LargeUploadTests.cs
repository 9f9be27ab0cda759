using System.Diagnostics;
using System.Text;
using Prefork.Tests.Support;
using Xunit.Abstractions;

namespace Prefork.Tests.Integration;

/// <summary>
/// Many large uploads at once: every body goes to a temp file (worker_tmp_dir), never the worker's
/// memory, in every worker class. A class of its own: it is the heaviest test and runs beside the rest.
/// </summary>
public sealed class LargeUploadTests(ITestOutputHelper output)
{
    public static TheoryData<string> Classes => WorkerClassTests.Classes;

    // What proves the bodies are spilled: the worker's peak RSS stays under 150 MB while it takes in far
    // more than that. Two uploads are 100 MiB (limit_request_body's default), one chunked and one with
    // Content-Length: even alone (a sync worker takes one at a time) either would pass the bound with
    // the runtime if it were held. The other 14 are 16 MiB: threads and epoll take all 16 at once,
    // 424 MiB in flight. (It was 16 x 100 MiB, 1.6 GiB, to prove the same bound.)
    private const int PieceSize = 1024 * 1024, LargePieces = 100, SmallPieces = 16;
    private const int Uploads = 16;
    private const long MaxPeakRssKiB = 150 * 1024;

    private static int PiecesOf(int upload) => upload < 2 ? LargePieces : SmallPieces;

    [Theory, MemberData(nameof(Classes))]
    public async Task Sixteen_concurrent_uploads_of_up_to_100_MiB_are_answered_whole_and_the_worker_stays_under_150_MB(string workerClass)
    {
        // threads: a thread per upload, so all sixteen are in the worker at once, as with epoll.
        using var server = PreforkServer.Start($"worker_class = \"{workerClass}\"\n{(workerClass == "threads" ? "threads = 16\n" : "")}", workers: 1);
        int workerPid = server.WaitForWorkers(1)[0];
        var piece = Enumerable.Range(0, PieceSize).Select(i => (byte)(i * 31 + i / 4093)).ToArray();

        var clock = Stopwatch.StartNew();
        // Blocking clients on threads of their own: sync serves one upload at a time, the rest queue.
        var uploads = Enumerable.Range(0, Uploads)
            .Select(i => Task.Factory.StartNew(() => Upload(server.Port, piece, PiecesOf(i), chunked: i == 0), TaskCreationOptions.LongRunning))
            .ToArray();
        var answers = await Task.WhenAll(uploads).WaitAsync(TimeSpan.FromSeconds(240));
        clock.Stop();

        var expected = new[] { LargePieces, SmallPieces }.ToDictionary(n => n, n => $"{(long)PieceSize * n} {Checksum(piece, n):x16}\n");
        for (int i = 0; i < Uploads; i++)
        {
            Assert.Equal(200, answers[i].Status);
            Assert.Equal(expected[PiecesOf(i)], answers[i].BodyText);
        }
        Assert.Equal([workerPid], server.WorkerPids());
        long peakKiB = PeakRssKiB(workerPid);
        long total = Enumerable.Range(0, Uploads).Sum(i => (long)PiecesOf(i));
        output.WriteLine($"{workerClass}: {Uploads} uploads, {total} MiB in {clock.Elapsed.TotalSeconds:F1} s, worker peak RSS (VmHWM) {peakKiB / 1024} MiB");
        Assert.True(peakKiB < MaxPeakRssKiB, $"the {workerClass} worker's peak RSS was {peakKiB / 1024} MiB");
    }

    private static HttpResponse Upload(int port, byte[] piece, int pieces, bool chunked)
    {
        using var socket = RawHttp.Connect(port, timeoutMs: 240_000);
        var framing = chunked ? "Transfer-Encoding: chunked" : $"Content-Length: {(long)piece.Length * pieces}";
        socket.Send(Encoding.ASCII.GetBytes($"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{framing}\r\n\r\n"));
        var chunkHead = Encoding.ASCII.GetBytes($"{piece.Length:x}\r\n");
        for (int i = 0; i < pieces; i++)
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
