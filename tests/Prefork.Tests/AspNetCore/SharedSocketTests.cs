using System.Net;
using System.Net.Sockets;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.AspNetCore;

/// <summary>
/// Runs alone: while it starts its workers the test's listening socket is inheritable, and no other
/// test may start a process then (it would inherit the socket too).
/// </summary>
[CollectionDefinition(nameof(SharedSocketTests), DisableParallelization = true)]
public sealed class InheritableSocketCollection;

/// <summary>
/// Two workers on one listening socket that the test owns, as the master owns its sockets: both serve,
/// and one stopping (Kestrel closes its listener) leaves the socket listening for the other and for the
/// master: nothing shuts the shared socket down.
/// </summary>
[Collection(nameof(SharedSocketTests))]
public sealed class SharedSocketTests
{
    [Fact]
    public void A_worker_that_stops_leaves_the_shared_socket_to_the_others()
    {
        int port = PreforkServer.FreePort();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen(128);
        int fd = (int)listener.Handle;
        SampleWebProcess first, second;
        Syscall.fcntl(fd, FcntlCommand.F_SETFD, 0); // inheritable, as the master makes its sockets
        try
        {
            first = SampleWebProcess.OnSharedSocket(listener, 0, port);
            second = SampleWebProcess.OnSharedSocket(listener, 1, port);
        }
        finally { Syscall.fcntl(fd, FcntlCommand.F_SETFD, 1); } // FD_CLOEXEC again
        using (first)
        using (second)
        {
            var pids = new HashSet<int>();
            Assert.True(Wait.Until(() =>
            {
                pids.Add(int.Parse(RawHttp.Get(port, "/pid", timeoutMs: 60_000).BodyText));
                return pids.Count == 2;
            }, SampleWebProcess.Bound), $"only {string.Join(", ", pids)} answered; logs:\n{first.Log}\n{second.Log}");
            Assert.Equal([first.Pid, second.Pid], pids.Order());

            first.Signal(Signum.SIGTERM);
            Assert.True(first.WaitForExit(SampleWebProcess.Bound), first.Log);
            Assert.Equal(0, first.Process.ExitCode);
            for (int i = 0; i < 20; i++) Assert.Equal(second.Pid.ToString(), RawHttp.Get(port, "/pid").BodyText);

            second.Signal(Signum.SIGTERM);
            Assert.True(second.WaitForExit(SampleWebProcess.Bound), second.Log);
        }
        // The socket still listens: the kernel completes a connection and queues it for the next worker
        // (a socket shut down by a worker would refuse it).
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(IPAddress.Loopback, port);
    }
}
