using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Prefork.SampleApp;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// A sync worker serves one connection at a time, so a client that trickles its request head holds
/// the worker: header_timeout must bound the whole head, not each wait for the next byte.
/// </summary>
[LongClass]
public sealed class SyncSlowClientTests
{
    [Fact]
    public void A_head_trickled_a_byte_every_half_second_holds_a_sync_worker_no_longer_than_header_timeout()
    {
        const int headerTimeoutS = 2;
        using var server = new InProcessWorker(WorkerClassTests.Toml("sync", $"header_timeout = {headerTimeoutS}"), new SampleApplication());
        Assert.Equal(200, server.Get("/").Status); // the worker is in its accept loop

        // Each byte arrives well within header_timeout of the last: only a bound on the whole head ends it.
        // Unbounded, it would hold the only worker for the 45 s the head lasts.
        var head = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + new string('a', 60));
        using var trickler = RawHttp.Connect(server.Port, 40_000);
        int sent = 0;
        var firstByte = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var drip = new Thread(() =>
        {
            for (int pos = 0; pos < head.Length && !stop.IsCancellationRequested; pos++)
            {
                try { trickler.Send(head, pos, 1, SocketFlags.None); }
                catch (SocketException) { return; } // the server closed it
                Interlocked.Increment(ref sent);
                stop.Token.WaitHandle.WaitOne(500); // the client's pace, not a wait on the server
            }
        }) { IsBackground = true };
        drip.Start();
        try
        {
            Assert.True(Wait.Until(() => Volatile.Read(ref sent) >= 2, TimeSpan.FromSeconds(10)), "the trickler could not send");

            // Another client is answered once header_timeout ends the trickled head (plus a generous margin for 2 busy cores).
            var waited = Stopwatch.StartNew();
            var r = RawHttp.Get(server.Port, "/", timeoutMs: 40_000);
            Assert.Equal(200, r.Status);
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(headerTimeoutS + 8), $"the second client waited {waited.Elapsed.TotalSeconds:F1} s");

            // And the trickler was ended by the server: 408, or a close, not held until it finished.
            AssertEndedWith408OrClose(trickler);
            var ended = firstByte.Elapsed;
            Assert.True(ended < TimeSpan.FromSeconds(headerTimeoutS + 8), $"the trickled head was ended after {ended.TotalSeconds:F1} s");
        }
        finally
        {
            stop.Cancel();
            drip.Join(TimeSpan.FromSeconds(10));
        }
    }

    [Theory]
    [InlineData("sync")]
    [InlineData("threads")]
    [InlineData("epoll")]
    public void The_first_head_is_timed_from_the_connection_not_from_its_first_byte(string workerClass)
    {
        const int headerTimeoutS = 4;
        using var server = new InProcessWorker(WorkerClassTests.Toml(workerClass, $"header_timeout = {headerTimeoutS}"), new SampleApplication());
        Assert.Equal(200, server.Get("/").Status);

        // Silent for most of header_timeout, then a byte every half second. Timed from its first byte,
        // the head would be ended no sooner than 3.5 + 4 = 7.5 s after the connection.
        var head = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + new string('a', 40));
        using var client = RawHttp.Connect(server.Port, 30_000);
        var connected = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var drip = new Thread(() =>
        {
            if (stop.Token.WaitHandle.WaitOne(3500)) return; // the client's pace, not a wait on the server
            for (int pos = 0; pos < head.Length && !stop.IsCancellationRequested; pos++)
            {
                try { client.Send(head, pos, 1, SocketFlags.None); }
                catch (SocketException) { return; } // the server closed it
                stop.Token.WaitHandle.WaitOne(500);
            }
        }) { IsBackground = true };
        drip.Start();
        try
        {
            AssertEndedWith408OrClose(client);
            var ended = connected.Elapsed;
            // header_timeout (4 s) plus 3 s for a busy machine: still before the 7.5 s of the per-first-byte clock.
            Assert.True(ended < TimeSpan.FromSeconds(7), $"the head was ended {ended.TotalSeconds:F1} s after the connection");
        }
        finally
        {
            stop.Cancel();
            drip.Join(TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>Blocks until the server ends the slow head: a 408, or a close (or reset) without one.</summary>
    private static void AssertEndedWith408OrClose(Socket client)
    {
        var buffer = new byte[512];
        int n;
        try { n = client.Receive(buffer); }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { n = 0; }
        var answer = Encoding.ASCII.GetString(buffer, 0, n);
        Assert.True(n == 0 || answer.StartsWith("HTTP/1.1 408 "), answer);
    }
}
