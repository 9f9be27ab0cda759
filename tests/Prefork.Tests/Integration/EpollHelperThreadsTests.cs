using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// An epoll worker moves every thread but its event loop to SCHED_BATCH, so that the runtime's
/// threads, waking (a query's result, a timer), do not preempt the loop that serves every
/// connection. Read from the real worker's /proc/PID/task/TID/stat.
/// </summary>
public sealed class EpollHelperThreadsTests
{
    private const int SchedOther = 0, SchedBatch = 3;

    [Fact]
    public void Every_thread_of_an_epoll_worker_but_its_loop_runs_SCHED_BATCH()
    {
        using var server = WorkerClassTests.Start("epoll", "app = \"Prefork.SampleApp:Prefork.SampleApp.AsyncSampleApplication\"\nworkers = 1\n");
        int worker = server.WaitForWorkers(1)[0];
        Assert.Equal(200, server.Get("/async/hello").Status); // the worker is serving, its helpers started
        // Threads that start later are moved at the next heartbeat, within a second.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Helpers(worker).Any(p => p != SchedBatch) && DateTime.UtcNow < deadline) Thread.Sleep(100);
        var helpers = Helpers(worker);
        Assert.True(helpers.Count >= 3, $"only {helpers.Count} threads besides the loop");
        Assert.All(helpers, policy => Assert.Equal(SchedBatch, policy));
        Assert.Equal(SchedOther, PolicyOf(worker, worker)); // the loop: the worker's main thread
    }

    [Fact]
    public void A_threads_worker_leaves_every_thread_as_it_was()
    {
        using var server = WorkerClassTests.Start("threads", "workers = 1\n");
        int worker = server.WaitForWorkers(1)[0];
        Assert.Equal(200, server.Get("/").Status);
        Thread.Sleep(1500); // longer than an epoll worker takes to move its threads
        Assert.All(Helpers(worker), policy => Assert.Equal(SchedOther, policy));
    }

    /// <summary>The policy of each thread of the process but its main one (threads that end meanwhile are left out).</summary>
    private static List<int> Helpers(int pid)
    {
        var policies = new List<int>();
        foreach (var dir in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            int tid = int.Parse(Path.GetFileName(dir));
            if (tid == pid) continue;
            try { policies.Add(PolicyOf(pid, tid)); }
            catch (IOException) { } // ended since the listing
        }
        return policies;
    }

    /// <summary>Field 41 of /proc/PID/task/TID/stat; the fields are counted after the name, which may hold spaces.</summary>
    private static int PolicyOf(int pid, int tid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/task/{tid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[41 - 3]);
    }
}
