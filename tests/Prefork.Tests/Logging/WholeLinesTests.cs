using System.Text.RegularExpressions;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Logging;

/// <summary>
/// Four workers (two threads each) log every request of a wrk run to one place: every line must
/// arrive whole (it parses as the default format), and there is one per request answered.
/// </summary>
public sealed partial class WholeLinesTests
{
    private const int Connections = 50, Seconds = 5;
    private const string Workers = "worker_class = \"threads\"\nthreads = 2\n";

    [Fact]
    public void Four_workers_appending_to_one_access_log_file_write_whole_lines()
    {
        using var server = PreforkServer.Start(Workers + "accesslog = \"access.log\"", workers: 4);
        var wrk = Load(server);
        var lines = File.ReadAllLines(Path.Combine(server.Directory, "access.log"));
        AssertOneWholeLinePerRequest(lines, wrk);
    }

    [Fact]
    public void Four_workers_logging_to_one_stdout_pipe_write_whole_lines()
    {
        // The error log goes to a file, so the master's captured output is the access log alone.
        using var server = PreforkServer.Start(Workers + "accesslog = \"-\"\nerrorlog = \"error.log\"", workers: 4, waitReady: false);
        Wait.ForFileToContain(Path.Combine(server.Directory, "error.log"), "Ready:");
        var wrk = Load(server);
        AssertOneWholeLinePerRequest(server.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries), wrk);
    }

    /// <summary>wrk for a few seconds against 4 workers, then a graceful stop: every line is out when the master has exited.</summary>
    private static WrkResult Load(PreforkServer server)
    {
        server.WaitForWorkers(4);
        WrkResult wrk;
        using (var load = Wrk.Start(server.Port, Connections, Seconds)) wrk = load.Wait();
        server.Signal(Signum.SIGTERM);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(30)), "the master did not exit after TERM");
        return wrk;
    }

    private static void AssertOneWholeLinePerRequest(IReadOnlyList<string> lines, WrkResult wrk)
    {
        Assert.True(wrk.Requests >= 5_000, $"too little load to tell: {wrk}");
        var torn = lines.Where(l => !AccessLine().IsMatch(l.TrimEnd('\r'))).ToList();
        Assert.True(torn.Count == 0, $"{torn.Count} of {lines.Count} lines do not parse, e.g.:\n{string.Join("\n", torn.Take(5))}");
        // wrk counts the answers it read; each connection may have had one more answered as it stopped.
        Assert.InRange(lines.Count, wrk.Requests, wrk.Requests + Connections + wrk.Failures);
    }

    // The default format: %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(p)s
    [GeneratedRegex(@"^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] ""GET / HTTP/1\.1"" 200 \d+ ""-"" ""[^""]*"" <\d+>$")]
    private static partial Regex AccessLine();
}
