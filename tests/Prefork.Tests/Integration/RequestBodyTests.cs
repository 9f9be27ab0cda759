using System.Text;
using Prefork.SampleApp;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// Large request bodies in every worker class: skipped whole when unread (the engine in-process),
/// refused when worker_tmp_dir is unusable (the real binary; many at once: LargeUploadTests).
/// </summary>
public sealed class RequestBodyTests
{
    public static TheoryData<string> Classes => WorkerClassTests.Classes;

    [Theory, MemberData(nameof(Classes))]
    public async Task A_large_body_the_app_does_not_read_is_skipped_whole_before_the_next_request(string workerClass)
    {
        using var server = new InProcessWorker(WorkerClassTests.Toml(workerClass), new SampleApplication());
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
}
