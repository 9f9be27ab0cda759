using System.Text;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// An epoll worker leaves a connection watched for input while its request awaits (saving two
/// epoll_ctl calls per request) and unwatches it at the first event that comes meanwhile. These are
/// the events: the next request sent while the first still awaits, and the client hanging up. Each
/// connection is kept alive past a first request, since only then is it watched when the next arrives.
/// </summary>
public sealed class EpollInFlightTests
{
    private const string AsyncApp = "app = \"Prefork.SampleApp:Prefork.SampleApp.AsyncSampleApplication\"\n";

    [Fact]
    public void A_request_sent_while_the_one_before_awaits_is_answered_after_it()
    {
        using var server = WorkerClassTests.Start("epoll", AsyncApp + "workers = 1\n");
        server.WaitForWorkers(1);
        using var socket = RawHttp.Connect(server.Port, 60_000);
        var reader = KeptAlive(socket);
        socket.Send(Encoding.ASCII.GetBytes("GET /async/lookup?id=7&ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n"));
        // Not pipelined with it: sent while the first awaits (its 1.5 s are far longer than the
        // pause), so it reaches a connection whose request is in flight.
        Thread.Sleep(300);
        socket.Send(Encoding.ASCII.GetBytes("GET /async/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        Assert.Equal("row 7: 5433\n", reader.Read().BodyText);
        var second = reader.Read();
        Assert.Equal("Hello, World!", second.BodyText);
        Assert.True(second.Closed);
    }

    [Fact]
    public void A_client_that_hangs_up_while_its_request_awaits_leaves_the_worker_serving()
    {
        using var server = WorkerClassTests.Start("epoll", AsyncApp + "workers = 1\n");
        var worker = server.WaitForWorkers(1)[0];
        for (int i = 0; i < 5; i++)
        {
            using var socket = RawHttp.Connect(server.Port, 60_000);
            KeptAlive(socket);
            socket.Send(Encoding.ASCII.GetBytes("GET /async/lookup?id=7&ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n"));
            Thread.Sleep(100); // in flight by now on an unloaded machine; if not, the hang-up comes first: as good
        }
        // The hang-ups were reported while the requests still await. A loop left watching them would be
        // told again every turn and spin a core until they end; an idle worker uses next to no CPU.
        var before = Processes.CpuTime(worker);
        Thread.Sleep(1000);
        var spent = Processes.CpuTime(worker) - before;
        Assert.True(spent < TimeSpan.FromMilliseconds(500), $"the worker used {spent.TotalMilliseconds} ms of CPU in 1 s while its requests awaited");
        // And the same worker answers the next clients.
        for (int i = 0; i < 3; i++)
            Assert.Equal(worker, ServedBy.Parse(server.Get("/pid")).Pid);
        Assert.Equal("row 7: 5433\n", server.Get("/async/lookup?id=7&ms=10").BodyText);
        Assert.Equal([worker], server.WorkerPids());
    }

    /// <summary>
    /// Serves one request on the connection first: only a kept-alive connection is watched for input
    /// when its next request arrives (a new one is read at once), so only there is input left watched.
    /// </summary>
    private static ResponseReader KeptAlive(System.Net.Sockets.Socket socket)
    {
        socket.Send(Encoding.ASCII.GetBytes("GET /async/hello HTTP/1.1\r\nHost: x\r\n\r\n"));
        var reader = new ResponseReader(socket);
        Assert.Equal("Hello, World!", reader.Read().BodyText);
        return reader;
    }
}
