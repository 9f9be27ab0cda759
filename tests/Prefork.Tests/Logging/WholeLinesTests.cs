using System.Text.RegularExpressions;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Logging;

/// <summary>
/// Four workers (two threads each) log every request of a wrk run to one place: every line must
/// arrive whole (it parses as the default format), and there is one per request answered. The
/// same for the error log on the stderr pipe they share with the master: every event whole.
/// </summary>
[LongClass]
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

    [Fact]
    public void Four_workers_logging_exceptions_to_one_stderr_pipe_write_whole_events()
    {
        // Every request to /crash logs an error event with a stack trace of several lines.
        using var server = PreforkServer.Start(Workers, workers: 4);
        server.WaitForWorkers(4);
        int crashes = 0;
        var until = DateTime.UtcNow.AddSeconds(Seconds);
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            while (DateTime.UtcNow < until)
                if (server.Get("/crash").Status == 500) Interlocked.Increment(ref crashes);
        });
        server.Signal(Signum.SIGTERM);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(30)), "the master did not exit after TERM");

        // Cut the log into events at each line that starts one; every /crash event must be whole:
        // its head line, then the same exception lines as every other.
        var events = new List<List<string>>();
        foreach (var line in server.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (ErrorLogHead().IsMatch(line) || events.Count == 0) events.Add([line]);
            else events[^1].Add(line);
        }
        var crashEvents = events.Where(e => e[0].Contains("Error handling request GET /crash")).ToList();
        Assert.True(crashes >= 200, $"too few errors to tell: {crashes}");
        var stack = string.Join("\n", crashEvents[0].Skip(1));
        Assert.Contains("the sample app's /crash route failed on purpose", stack);
        var broken = events.Where(e => !ErrorLogHead().IsMatch(e[0]) || (crashEvents.Contains(e) && string.Join("\n", e.Skip(1)) != stack)).ToList();
        Assert.True(broken.Count == 0, $"{broken.Count} of {events.Count} events are not whole, e.g.:\n{string.Join("\n", broken.Take(3).Select(e => string.Join("\n", e)))}");
        Assert.Equal(crashes, crashEvents.Count);
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

    // The error log's template: [time] [pid] [LEVEL] role message
    [GeneratedRegex(@"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d\d:\d\d\] \[\d+\] \[[A-Z]{4}\] ")]
    private static partial Regex ErrorLogHead();
}
