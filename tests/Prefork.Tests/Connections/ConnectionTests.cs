using System.Text;
using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Connections;
using Prefork.Gateway;
using Prefork.Http;

namespace Prefork.Tests.Connections;

/// <summary>
/// A <see cref="Connection"/> driven directly over a socketpair, without a worker process: what a
/// connection does with the bytes it is given, whatever engine reads them.
/// </summary>
public sealed class ConnectionTests : IDisposable
{
    private readonly int _client;
    private readonly Connection _connection;
    private readonly EchoTargetHandler _handler = new();
    private readonly ResponseWriter _writer = new(new BlockingTransport(5000));

    public ConnectionTests()
    {
        Assert.Equal(0, Syscall.socketpair(UnixAddressFamily.AF_UNIX, UnixSocketType.SOCK_STREAM, 0, out int server, out _client));
        Assert.Equal(0, Syscall.fcntl(server, FcntlCommand.F_SETFL, (int)OpenFlags.O_NONBLOCK)); // as accept4 hands it over
        var config = ConfigLoader.Parse(null, null);
        _connection = new Connection(config, HttpLimits.From(config), CancellationToken.None, new BlockingTransport(config.Milliseconds(Settings.Timeout)));
        _connection.Open(server);
    }

    public void Dispose()
    {
        _connection.Close();
        Syscall.close(_client);
    }

    [Fact]
    public void Pipelined_requests_are_answered_in_order_in_one_pass()
    {
        Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(ReceiveResult.Data, _connection.Receive());

        Assert.Equal(ServeStep.NeedInput, Serve());

        Assert.Equal(["/a", "/b", "/c"], _handler.Targets);
        var responses = ReadAvailable();
        int a = responses.IndexOf("\r\n\r\n/a", StringComparison.Ordinal);
        int b = responses.IndexOf("\r\n\r\n/b", StringComparison.Ordinal);
        int c = responses.IndexOf("\r\n\r\n/c", StringComparison.Ordinal);
        Assert.True(a > 0 && a < b && b < c, responses);
    }

    [Fact]
    public void A_head_split_byte_by_byte_is_answered_once_when_whole()
    {
        var request = "GET /split HTTP/1.1\r\nHost: x\r\n\r\n";
        for (int i = 0; i < request.Length; i++)
        {
            Send(request[i].ToString());
            Assert.Equal(ReceiveResult.Data, _connection.Receive());
            var step = Serve();
            if (i < request.Length - 1)
            {
                Assert.Equal(ServeStep.NeedInput, step);
                Assert.Empty(_handler.Targets);
                Assert.True(_connection.Reader.HasPartialRequest);
            }
        }
        Assert.Equal(["/split"], _handler.Targets);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", ReadAvailable());
        Assert.False(_connection.Reader.HasPartialRequest);
    }

    [Fact]
    public void A_malformed_request_after_a_good_one_gets_400_and_ends_the_connection()
    {
        Send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /bad HTTP/1.1\r\nHost x\r\n\r\n");
        Assert.Equal(ReceiveResult.Data, _connection.Receive());

        Assert.Equal(ServeStep.Close, Serve());

        Assert.Equal(["/ok"], _handler.Targets);
        var responses = ReadAvailable();
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", responses);
        Assert.Contains("HTTP/1.1 400 ", responses);
    }

    private ServeStep Serve() => _connection.Serve(_handler, _writer, keepAliveAllowed: true, blocking: true, out _);

    private void Send(string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        Assert.Equal(bytes.Length, (int)Syscall.send(_client, bytes, (ulong)bytes.Length, 0));
    }

    /// <summary>What the connection has written so far (it writes before Serve returns).</summary>
    private string ReadAvailable()
    {
        var text = new StringBuilder();
        var buffer = new byte[65536];
        for (long n; (n = Syscall.recv(_client, buffer, (ulong)buffer.Length, MessageFlags.MSG_DONTWAIT)) > 0;)
            text.Append(Encoding.ASCII.GetString(buffer, 0, (int)n));
        return text.ToString();
    }

    /// <summary>Answers each request with its target as the body.</summary>
    private sealed class EchoTargetHandler : IRequestHandler
    {
        private static readonly KeyValuePair<string, string>[] Headers = [new("Content-Type", "text/plain")];
        public List<string> Targets { get; } = [];

        public ValueTask<bool> ProcessAsync(RequestHead head, Stream body, long bodyLength, ConnectionInfo connection,
            ResponseWriter writer, bool keepAlive, RequestHeaders? trailers)
        {
            Targets.Add(head.Target);
            var bytes = Encoding.ASCII.GetBytes(head.Target);
            writer.WriteHead("200 OK", Headers, head, keepAlive && head.KeepAlive, bytes.Length);
            writer.WriteBody(bytes);
            writer.EndBody();
            return ValueTask.FromResult(writer.KeepAlive);
        }
    }
}
