using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.AspNetCore;

/// <summary>
/// The ASP.NET Core sample with builder.WebHost.UsePrefork(), run the way the Prefork master runs a
/// command worker (sockets from systemd-socket-activate, the test as the master: its notify socket
/// and its pid as PREFORK_MASTER_PID), and on its own, where UsePrefork must change nothing.
/// </summary>
[LongClass]
public sealed class SampleWebTests
{
    private static readonly TimeSpan Bound = SampleWebProcess.Bound;

    internal static IEnumerable<string> Heartbeats(NotifySocket notify) =>
        notify.Messages.Where(m => NotifySocket.Field(m, "PREFORK_REQUESTS") is not null);

    [Fact]
    public void Serves_only_the_passed_socket_with_the_masters_backlog_and_says_ready_once_it_serves()
    {
        using var notify = new NotifySocket(@abstract: true);
        int elsewhere = PreforkServer.FreePort();
        using var app = SampleWebProcess.UnderPrefork(notify, new Dictionary<string, string>
        {
            ["PREFORK_BACKLOG"] = "77",
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{elsewhere}", // ignored under Prefork
        });
        Assert.Empty(notify.Messages); // systemd-socket-activate has not started the app yet

        Assert.Equal("Hello from ASP.NET Core", app.WaitUntilServing().BodyText);
        notify.WaitUntil(m => m.Contains("READY=1"), Bound, "READY=1", () => app.Log);
        Assert.Equal("READY=1", notify.Messages[0]); // no heartbeat before it
        Assert.Equal(app.Pid.ToString(), app.Get("/pid").BodyText);

        Assert.Equal([app.Port], app.ListeningPorts()); // not ASPNETCORE_URLS' port, not 5000
        Assert.Equal(77, app.Backlog()); // Kestrel's listen() used PREFORK_BACKLOG, not its 512
        app.WaitForLog($"Serving under Prefork as worker 0 of master {Environment.ProcessId} (generation 1): fd 3 'http', backlog 77");
    }

    [Fact]
    public async Task Heartbeats_count_the_requests_served_and_name_the_oldest_one_in_flight()
    {
        using var notify = new NotifySocket(@abstract: false);
        using var app = SampleWebProcess.UnderPrefork(notify, new Dictionary<string, string> { ["WATCHDOG_USEC"] = "1000000" });
        app.WaitUntilServing();
        for (int i = 0; i < 5; i++) Assert.Equal(200, app.Get("/api/items/" + i).Status);
        // 6 requests so far, none in flight.
        notify.WaitUntil(_ => Heartbeats(notify).Any(h => NotifySocket.Field(h, "PREFORK_REQUESTS") == "6"), Bound, "PREFORK_REQUESTS=6", () => app.Log);
        var idle = Heartbeats(notify).Last();
        Assert.Equal("WATCHDOG=1", idle.Split('\n')[0]);
        Assert.Equal("-1", NotifySocket.Field(idle, "PREFORK_BUSY_MS"));
        Assert.Null(NotifySocket.Field(idle, "PREFORK_PATH"));

        // Only heartbeats from now on: on a loaded machine the first request ("/", JIT and all) can
        // itself have been in flight for a second, and an earlier heartbeat would name it.
        int seen = Heartbeats(notify).Count();
        IEnumerable<string> BusyForASecond() =>
            Heartbeats(notify).Skip(seen).Where(h => long.Parse(NotifySocket.Field(h, "PREFORK_BUSY_MS")!) >= 1000);
        var slow = Task.Run(() => app.Get("/slow?ms=4000"));
        notify.WaitUntil(_ => BusyForASecond().Any(), Bound, "a heartbeat with the /slow request in flight for 1 s", () => app.Log);
        var busy = BusyForASecond().First();
        Assert.Equal("GET", NotifySocket.Field(busy, "PREFORK_METHOD"));
        Assert.Equal("/slow", NotifySocket.Field(busy, "PREFORK_PATH"));
        Assert.Equal("6", NotifySocket.Field(busy, "PREFORK_REQUESTS")); // counted when it ends

        Assert.Equal(200, (await slow).Status);
        notify.WaitUntil(_ => NotifySocket.Field(Heartbeats(notify).Last(), "PREFORK_REQUESTS") == "7" &&
                              NotifySocket.Field(Heartbeats(notify).Last(), "PREFORK_BUSY_MS") == "-1",
            Bound, "PREFORK_REQUESTS=7 and idle again", () => app.Log);
    }

    [Fact]
    public async Task Every_route_answers_under_prefork_over_tcp_and_a_unix_socket()
    {
        var unix = Path.Combine(Path.GetTempPath(), $"prefork-sampleweb-{Guid.NewGuid():N}.sock");
        using var notify = new NotifySocket(@abstract: true);
        try
        {
            using var app = SampleWebProcess.UnderPrefork(notify, unixSocket: unix);
            app.WaitUntilServing();

            var item = JsonDocument.Parse(app.Get("/api/items/42").Body).RootElement;
            Assert.Equal(42, item.GetProperty("id").GetInt32());
            Assert.Equal(app.Pid, item.GetProperty("servedBy").GetInt32());
            var page = app.Get("/index.html");
            Assert.Equal(200, page.Status);
            Assert.Contains("<h1>Prefork.SampleWeb</h1>", page.BodyText); // wwwroot found, though the app runs elsewhere
            var stream = app.Get("/stream?chunks=50");
            Assert.Equal("chunked", stream.Header("Transfer-Encoding"));
            Assert.Equal(string.Concat(Enumerable.Range(0, 50).Select(i => $"chunk {i}\n")), stream.BodyText);
            Assert.Equal("slept 20 ms", app.Get("/slow?ms=20").BodyText);
            Assert.Equal(400, app.Get("/slow?ms=60001").Status);
            Assert.Equal(400, app.Get("/stream?chunks=10001").Status);
            Assert.Equal(404, app.Get("/nothing-here").Status);
            Assert.Equal("hello over a WebSocket", await Echo(app.Port, "hello over a WebSocket"));

            // The second passed socket is a Unix one: Kestrel serves it too.
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10_000 };
            socket.Connect(new UnixDomainSocketEndPoint(unix));
            socket.Send("GET /pid HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n"u8.ToArray());
            Assert.Equal(app.Pid.ToString(), new ResponseReader(socket).Read().BodyText);
        }
        finally { File.Delete(unix); }
    }

    [Fact]
    public async Task A_websocket_is_counted_but_never_reported_busy()
    {
        using var notify = new NotifySocket(@abstract: true);
        using var app = SampleWebProcess.UnderPrefork(notify);
        app.WaitUntilServing();
        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{app.Port}/ws"), new CancellationTokenSource(Bound).Token);
        // Two heartbeats after the upgrade: idle, although the WebSocket is open.
        int before = Heartbeats(notify).Count();
        notify.WaitUntil(_ => Heartbeats(notify).Count() >= before + 2, Bound, "two heartbeats", () => app.Log);
        Assert.All(Heartbeats(notify).Skip(before), h => Assert.Equal("-1", NotifySocket.Field(h, "PREFORK_BUSY_MS")));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", new CancellationTokenSource(Bound).Token);
        notify.WaitUntil(_ => NotifySocket.Field(Heartbeats(notify).Last(), "PREFORK_REQUESTS") == "2", Bound, "the WebSocket counted", () => app.Log);
    }

    [Fact]
    public async Task Https_with_http2_on_the_passed_socket_when_the_sample_has_a_certificate()
    {
        var pfx = Path.Combine(Path.GetTempPath(), $"prefork-sampleweb-{Guid.NewGuid():N}.pfx");
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using (var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1)))
            File.WriteAllBytes(pfx, cert.Export(X509ContentType.Pfx));
        try
        {
            using var notify = new NotifySocket(@abstract: true);
            using var app = SampleWebProcess.UnderPrefork(notify, new Dictionary<string, string> { ["SAMPLEWEB_CERT"] = pfx });
            using var client = new HttpClient(new SocketsHttpHandler
            {
                SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true }, // self-signed, for this test only
            }) { Timeout = Bound };
            var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"https://127.0.0.1:{app.Port}/pid")
            {
                Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            });
            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal(app.Pid.ToString(), await response.Content.ReadAsStringAsync());
        }
        finally { File.Delete(pfx); }
    }

    [Fact]
    public async Task Outside_prefork_it_serves_its_urls_as_usual_and_notifies_nobody()
    {
        using var notify = new NotifySocket(@abstract: true);
        // Prefork's variables without LISTEN_PID naming this process: sockets meant for someone else.
        using var app = SampleWebProcess.Standalone(new Dictionary<string, string>
        {
            ["NOTIFY_SOCKET"] = notify.Name, ["PREFORK_MASTER_PID"] = Environment.ProcessId.ToString(),
            ["LISTEN_FDS"] = "1", ["LISTEN_PID"] = "1", ["PREFORK_BACKLOG"] = "77",
        });
        Assert.Equal("Hello from ASP.NET Core", app.Get("/").BodyText);
        Assert.Equal([app.Port], app.ListeningPorts());
        Assert.Equal(512, app.Backlog()); // Kestrel's own
        Assert.Equal("hi", await Echo(app.Port, "hi"));
        // UsePrefork would have said READY=1 before "Application started" was logged (callbacks run newest first).
        Assert.Empty(notify.Messages);
        Assert.DoesNotContain("Serving under Prefork", app.Log);
    }

    /// <summary>One text message through /ws and back.</summary>
    private static async Task<string> Echo(int port, string text)
    {
        using var ws = new ClientWebSocket();
        using var timeout = new CancellationTokenSource(Bound);
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws"), timeout.Token);
        await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, timeout.Token);
        var buffer = new byte[1024];
        var received = await ws.ReceiveAsync(buffer, timeout.Token);
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
        return Encoding.UTF8.GetString(buffer, 0, received.Count);
    }
}
