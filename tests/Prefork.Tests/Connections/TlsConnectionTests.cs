using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Connections;
using Prefork.Gateway;
using Prefork.Http;
using Prefork.Interop;
using Prefork.Tests.Support;
using Xunit.Abstractions;

namespace Prefork.Tests.Connections;

/// <summary>
/// A <see cref="Connection"/> over a <see cref="TlsTransport"/>, driven directly over a socketpair
/// as a sync worker drives it (poll, receive, serve), with a real <see cref="SslStream"/> client on
/// another thread: what TLS costs per request once the connection is up.
/// </summary>
public sealed class TlsConnectionTests : IDisposable
{
    private readonly TestCertificates _certs = new();
    private readonly int _server, _client;
    private readonly Connection _connection;
    private readonly HelloHandler _handler = new();
    private readonly ResponseWriter _writer = new(new BlockingTransport(5000));
    private readonly ITestOutputHelper _output;

    public TlsConnectionTests(ITestOutputHelper output)
    {
        _output = output;
        var (cert, key) = _certs.Issue("server");
        var config = ConfigLoader.Parse($"certfile = \"{cert}\"\nkeyfile = \"{key}\"", null);
        var tls = TlsServer.Load(config)!;
        Assert.Equal(0, Syscall.socketpair(UnixAddressFamily.AF_UNIX, UnixSocketType.SOCK_STREAM, 0, out _server, out _client));
        Assert.Equal(0, Syscall.fcntl(_server, FcntlCommand.F_SETFL, (int)OpenFlags.O_NONBLOCK)); // as accept4 hands it over
        _connection = new Connection(config, HttpLimits.From(config), CancellationToken.None,
            new TlsTransport(new BlockingTransport(config.Milliseconds(Settings.Timeout)), tls));
        _connection.Open(_server); // its info says TCP (not filled in from an accept): TLS is on
    }

    public void Dispose()
    {
        _connection.Close();
        Syscall.close(_client);
        _certs.Dispose();
    }

    [Theory]
    [InlineData(1)] // sync: one thread serves the connection
    [InlineData(2)] // threads: each readable event goes to whichever thread waits, so SslStream's buffers are rented on one thread and returned on another
    public void Keep_alive_requests_over_TLS_allocate_nothing_once_the_connection_is_up(int threads)
    {
        const int WarmUp = 200, Window = 250, Windows = 6;
        using var client = new KeepAliveClient(_client, requests: WarmUp + Window * Windows);
        var bytes = ServeByTurns(threads, WarmUp, Window, Windows);
        client.Finish();
        _output.WriteLine($"bytes allocated per window of {Window} requests: {string.Join(", ", bytes)}");
        // An allocation per request shows in every window. Other tests running meanwhile collect
        // garbage, and a collection may trim the shared ArrayPool, so a window now and then pays for
        // a buffer again: the quietest window is the measure.
        Assert.True(bytes.Min() < Window, $"bytes allocated per window of {Window} requests: {string.Join(", ", bytes)}");
        Assert.Equal(WarmUp + Window * Windows, _handler.Requests);
    }

    [Fact]
    public void A_handshake_costs_a_bounded_allocation_once_per_connection()
    {
        using var client = new KeepAliveClient(_client, requests: 2);
        long first = Allocated(() => ServeRequests(1)), second = Allocated(() => ServeRequests(1));
        client.Finish();
        _output.WriteLine($"handshake and first request: {first} bytes; second request: {second} bytes");
        // SslStream, its handshake state, the certificate exchange: tens of KB, paid once per connection
        // (bench/results/alloc-tls-*.md). A regression to per-record costs would show in the keep-alive tests.
        Assert.InRange(first, 1, 256 * 1024);
    }

    /// <summary>
    /// <paramref name="threads"/> threads serve one request each in turn (as the threads worker's
    /// threads take events); after <paramref name="warmUp"/> requests, the bytes they all allocated in
    /// each window of <paramref name="window"/> requests.
    /// </summary>
    private long[] ServeByTurns(int threads, int warmUp, int window, int windows)
    {
        var turns = Enumerable.Range(0, threads).Select(i => new SemaphoreSlim(i == 0 ? 1 : 0)).ToArray();
        var bytes = new long[windows];
        int total = warmUp + window * windows;
        Exception? failure = null;
        var workers = Enumerable.Range(0, threads).Select(i => new Thread(() =>
        {
            var next = turns[(i + 1) % threads];
            try
            {
                for (int request = i; request < total; request += threads)
                {
                    if (!turns[i].Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("no turn for 60 s");
                    if (failure is not null) break;
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    ServeRequests(1);
                    long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                    if (request >= warmUp) Interlocked.Add(ref bytes[(request - warmUp) / window], allocated);
                    next.Release();
                }
            }
            catch (Exception e)
            {
                failure = e;
                next.Release();
            }
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());
        Assert.Null(failure);
        return bytes;
    }

    /// <summary>Serves until <paramref name="count"/> more requests were answered, as the sync worker does.</summary>
    private void ServeRequests(int count)
    {
        int target = _handler.Requests + count;
        while (_handler.Requests < target)
        {
            // Plain checks: xunit's asserts would box (allocate) on every pass.
            // Serve has read what TLS had taken already: NeedInput means the socket.
            if ((Native.PollOne(_server, Native.POLLIN, 30_000) & Native.POLLIN) == 0)
                throw new TimeoutException("the client sent nothing for 30 s");
            if (_connection.Receive() == ReceiveResult.Error) throw new IOException("the TLS connection failed");
            if (_connection.Serve(_handler, _writer, keepAliveAllowed: true, blocking: true, out _) == ServeStep.Close)
                throw new IOException("the connection closed");
        }
    }

    /// <summary>Bytes this thread allocates running <paramref name="action"/> (the client runs on another).</summary>
    private static long Allocated(Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    /// <summary>Answers "hello" to every request, allocating nothing.</summary>
    private sealed class HelloHandler : IRequestHandler
    {
        private static readonly KeyValuePair<string, string>[] Headers = [new("Content-Type", "text/plain")];
        private static readonly byte[] Body = "hello"u8.ToArray();
        public int Requests;

        public ValueTask<bool> ProcessAsync(RequestHead head, Stream body, long bodyLength, ConnectionInfo connection,
            ResponseWriter writer, bool keepAlive, RequestHeaders? trailers)
        {
            Requests++;
            writer.WriteHead("200 OK", Headers, head, keepAlive && head.KeepAlive, Body.Length);
            writer.WriteBody(Body);
            writer.EndBody();
            return ValueTask.FromResult(keepAlive && head.KeepAlive);
        }
    }

    /// <summary>A TLS client on its own thread: one request at a time on one connection, each response read whole before the next request.</summary>
    private sealed class KeepAliveClient : IDisposable
    {
        private static readonly byte[] Request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"u8.ToArray();
        private readonly SslStream _ssl;
        private readonly Thread _thread;
        private Exception? _failure;

        public KeepAliveClient(int fd, int requests)
        {
            var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: false)) { ReceiveTimeout = 30_000 };
            _ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), false, (_, _, _, _) => true);
            _thread = new Thread(() =>
            {
                try { Run(requests); }
                catch (Exception e) { _failure = e; }
            }) { IsBackground = true };
            _thread.Start();
        }

        private void Run(int requests)
        {
            _ssl.AuthenticateAsClient("localhost");
            var buffer = new byte[4096];
            for (int i = 0; i < requests; i++)
            {
                _ssl.Write(Request);
                // One response: the head up to its blank line, then the 5-byte body.
                int have = 0, end = -1;
                while (end < 0 || have < end + 5)
                {
                    int n = _ssl.Read(buffer, have, buffer.Length - have);
                    if (n == 0) throw new IOException($"the server closed after {i} responses");
                    have += n;
                    if (end < 0 && Encoding.ASCII.GetString(buffer, 0, have).IndexOf("\r\n\r\n", StringComparison.Ordinal) is >= 0 and var at) end = at + 4;
                }
                if (have != end + 5) throw new IOException($"more than one response arrived: {Encoding.ASCII.GetString(buffer, 0, have)}");
            }
        }

        public void Finish()
        {
            Assert.True(_thread.Join(TimeSpan.FromSeconds(60)), "the client did not finish");
            Assert.Null(_failure);
        }

        public void Dispose()
        {
            _thread.Join(TimeSpan.FromSeconds(60));
            _ssl.Dispose();
        }
    }
}
