using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// A worker out of file descriptors: accept4 fails with EMFILE, the worker backs off, says so in
/// the error log, and serves again once connections close. Writing that line must need no fd.
/// </summary>
public partial class OutOfFdsTests
{
    private struct RLimit { public ulong Current, Max; }
    private const int RLIMIT_NOFILE = 7;
    [DllImport("libc", SetLastError = true)] private static extern int prlimit(int pid, int resource, in RLimit limit, IntPtr old);

    [GeneratedRegex(@"^\[[\d-]+ [\d:.]+ (?<offset>[+-]\d\d:\d\d)\] .*accept4 failed: errno 24", RegexOptions.Multiline)]
    private static partial Regex AcceptFailed();

    [Theory]
    [InlineData("threads")]
    [InlineData("epoll")]
    public void A_worker_out_of_fds_logs_the_warning_in_local_time_and_serves_again_once_connections_close(string workerClass)
    {
        // loglevel warning: the EMFILE warning is the worker's first line, so nothing formatted one
        // before. TZ: a zone never at UTC, so a line that could not open its zone file shows.
        using var server = PreforkServer.Start($"worker_class = \"{workerClass}\"\nloglevel = \"warning\"\nkeepalive = 60", workers: 1,
            waitReady: false, environment: new Dictionary<string, string> { ["TZ"] = "Europe/Paris" });
        Assert.True(Wait.Until(() => Answers(server), TimeSpan.FromSeconds(60)), "no answer:\n" + server.Log);
        int worker = server.WaitForWorkers(1)[0];

        // A few fds of headroom, then more connections than that: accept runs out.
        int open = Directory.GetFiles($"/proc/{worker}/fd").Length;
        var limit = new RLimit { Current = (ulong)open + 8, Max = (ulong)open + 8 };
        Assert.Equal(0, prlimit(worker, RLIMIT_NOFILE, limit, IntPtr.Zero));
        var held = new List<Socket>();
        try
        {
            for (int i = 0; i < 30; i++)
            {
                var socket = RawHttp.Connect(server.Port);
                socket.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
                held.Add(socket);
            }
            server.WaitForLog("accept4 failed", TimeSpan.FromSeconds(30));
            var line = AcceptFailed().Match(server.Log);
            Assert.True(line.Success, server.Log);
            var paris = TimeZoneInfo.FindSystemTimeZoneById("Europe/Paris").GetUtcOffset(DateTime.UtcNow);
            Assert.Equal($"+{paris:hh\\:mm}", line.Groups["offset"].Value);
        }
        finally
        {
            foreach (var socket in held) socket.Dispose();
        }
        Assert.True(Wait.Until(() => Answers(server), TimeSpan.FromSeconds(30)), "not serving again:\n" + server.Log);
        Assert.Equal([worker], server.WorkerPids());
    }

    private static bool Answers(PreforkServer server)
    {
        try { return server.Get("/").Status == 200; }
        catch (Exception e) when (e is SocketException or IOException) { return false; }
    }
}
