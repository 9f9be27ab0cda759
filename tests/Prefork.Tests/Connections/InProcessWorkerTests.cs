using System.Text;
using Prefork.SampleApp;
using Prefork.Tests.Integration;
using Prefork.Tests.Support;

namespace Prefork.Tests.Connections;

/// <summary>An engine run in the test process (<see cref="InProcessWorker"/>): what one worker does across requests.</summary>
public sealed class InProcessWorkerTests
{
    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void A_failure_before_any_byte_left_gets_its_500_after_a_failure_mid_body(string workerClass)
    {
        using var worker = new InProcessWorker(WorkerClassTests.Toml(workerClass), new AsyncSampleApplication());
        for (int round = 0; round < 3; round++)
        {
            // Bytes have left when this fails: the connection is dropped, the body left unended.
            using (var socket = RawHttp.Connect(worker.Port))
            {
                socket.Send("GET /async/stream-crash HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
                var received = new MemoryStream();
                var buffer = new byte[4096];
                for (int n; (n = socket.Receive(buffer)) > 0;) received.Write(buffer, 0, n); // until the worker closes
                var text = Encoding.ASCII.GetString(received.ToArray());
                Assert.StartsWith("HTTP/1.1 200 OK\r\n", text);
                Assert.EndsWith("6\r\nfirst\n\r\n", text);
            }
            // Nothing has left when this one fails: the same serving thread still owes its client a 500.
            var failed = RawHttp.Send(worker.Port, "GET /async/crash?ms=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            Assert.Equal(500, failed.Status);
        }
    }
}
