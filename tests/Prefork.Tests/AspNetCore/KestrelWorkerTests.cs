using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.AspNetCore;

/// <summary>
/// The real master running the ASP.NET Core sample as command workers (`prefork -- dotnet
/// Prefork.SampleWeb.dll`): Kestrel in every worker on the master's socket, readiness and
/// heartbeats over the master's notify socket, the master's timeouts and signals.
/// </summary>
[LongClass]
public sealed class KestrelWorkerTests
{
    private static readonly TimeSpan Bound = SampleWebProcess.Bound;

    /// <summary>A master with <paramref name="workers"/> Kestrel workers, plus <paramref name="toml"/>; started once every worker said READY=1.</summary>
    private static PreforkServer Start(int workers, string toml = "graceful_timeout = 10\n") =>
        PreforkServer.Start(toml, workers: workers, args: ["--", SampleWebProcess.DotnetHost, SampleWebProcess.Dll]);

    /// <summary>The pid that answers /pid (waiting as long as a worker may take to boot on a busy machine).</summary>
    private static int Pid(PreforkServer server) => int.Parse(RawHttp.Get(server.Port, "/pid", timeoutMs: (int)Bound.TotalMilliseconds).BodyText);

    /// <summary>Requests /pid until every one of <paramref name="workers"/> has answered (Kestrel's accept is not round-robin).</summary>
    private static void WaitUntilEachAnswers(PreforkServer server, IReadOnlyList<int> workers)
    {
        var answering = new HashSet<int>();
        Assert.True(Wait.Until(() => { answering.Add(Pid(server)); return answering.IsSupersetOf(workers); }, Bound),
            $"pids answering: {string.Join(",", answering)}; workers: {string.Join(",", workers)}\n{server.Log}");
    }

    [Fact]
    public void Five_HUPs_under_keep_alive_load_fail_no_request_and_USR2_keeps_the_master_pid()
    {
        using var server = Start(workers: 2);
        var first = server.WaitForWorkers(2);
        // Each worker drains before Kestrel stops (every answer says Connection: close); without
        // that, Kestrel closes idle keep-alive connections under requests clients are just sending.
        // Load for as long as the reloads take (stopped after the last); each HUP is one more try at that hand-off.
        // Unpaced: Kestrel closes a connection idle at its stop at once (Prefork's engines wait keepalive for
        // the next request and answer it with close), so a client pausing between requests races that close.
        using var wrk = Wrk.Start(server.Port, connections: 20, seconds: 110);
        for (int generation = 2; generation <= 6; generation++)
        {
            Thread.Sleep(300); // some load on each generation before the next HUP
            server.Signal(Mono.Unix.Native.Signum.SIGHUP);
            server.WaitForGeneration(generation, Bound);
        }
        Thread.Sleep(300);
        var result = wrk.Stop();
        Assert.True(result.Failures == 0 && result.Requests > 500, $"{result}\n{server.Log}");
        Assert.DoesNotContain(server.WorkerPids(), first.Contains);

        int master = server.MasterPid;
        var beforeUpgrade = server.WorkerPids();
        server.Signal(Mono.Unix.Native.Signum.SIGUSR2);
        server.WaitForGeneration(7, Bound);
        Assert.False(server.Master.HasExited);
        Assert.Equal(master, server.MasterPid);
        var workers = server.WaitForWorkers(2, also: pids => !pids.Intersect(beforeUpgrade).Any());
        Assert.Contains(JsonDocument.Parse(server.Get("/api/items/1").Body).RootElement.GetProperty("servedBy").GetInt32(), workers);
    }

    [Fact]
    public async Task Three_workers_answer_every_route_on_the_masters_socket_with_its_backlog()
    {
        using var server = Start(workers: 3, "graceful_timeout = 10\nbacklog = 300\n");
        var workers = server.WaitForWorkers(3);
        WaitUntilEachAnswers(server, workers);
        server.WaitForLog("(READY=1)", Bound, occurrences: 3); // "Booted worker N (pid P), generation 1, in T ms (READY=1)"

        Assert.Equal("Hello from ASP.NET Core", server.Get("/").BodyText);
        var item = JsonDocument.Parse(server.Get("/api/items/9").Body).RootElement;
        Assert.Contains(item.GetProperty("servedBy").GetInt32(), workers);
        Assert.Contains("<h1>Prefork.SampleWeb</h1>", server.Get("/index.html").BodyText); // wwwroot, though workers run in the config's folder
        Assert.Equal(string.Concat(Enumerable.Range(0, 20).Select(i => $"chunk {i}\n")), server.Get("/stream?chunks=20").BodyText);
        Assert.Equal("slept 10 ms", server.Get("/slow?ms=10").BodyText);

        using var ws = new ClientWebSocket();
        using var timeout = new CancellationTokenSource(Bound);
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{server.Port}/ws"), timeout.Token);
        foreach (var text in new[] { "one", "two" })
        {
            await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, timeout.Token);
            var buffer = new byte[64];
            var received = await ws.ReceiveAsync(buffer, timeout.Token);
            Assert.Equal(text, Encoding.UTF8.GetString(buffer, 0, received.Count));
        }
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);

        // The socket's backlog is still the master's: no worker's Kestrel set its own 512.
        var (code, ss) = Repo.Run("ss", ["-Hltn", $"sport = :{server.Port}"]);
        Assert.True(code == 0, ss);
        Assert.Equal("300", ss.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2]);
    }

    [Fact]
    public void A_worker_killed_with_KILL_is_replaced_by_one_that_serves()
    {
        using var server = Start(workers: 2);
        var before = server.WaitForWorkers(2);
        Syscall.kill(before[0], Signum.SIGKILL);
        var after = server.WaitForWorkers(2, also: pids => !pids.Contains(before[0]));
        server.WaitForLog("Booted worker", Bound, occurrences: 3); // the replacement said READY=1
        WaitUntilEachAnswers(server, after);
    }

    [Fact]
    public void A_request_stuck_longer_than_timeout_gets_its_worker_replaced_and_the_log_names_the_request()
    {
        using var server = Start(workers: 1, "graceful_timeout = 5\ntimeout = 3\n");
        var pid = server.WaitForWorkers(1)[0];
        // Not answered: the worker is killed after ~3 s of it (the heartbeat's PREFORK_BUSY_MS and PREFORK_PATH).
        Assert.ThrowsAny<Exception>(() => server.Get("/slow?ms=60000"));
        server.WaitForLog($"WORKER TIMEOUT: worker 0 (pid {pid}) spent", Bound);
        server.AssertLogged("on GET /slow (timeout 3 s)");
        var replacement = server.WaitForWorkers(1, also: pids => !pids.Contains(pid))[0];
        server.WaitForLog($"Booted worker 0 (pid {replacement})", Bound);
        Assert.Equal(replacement, Pid(server));
    }

    [Fact]
    public void Max_requests_recycles_a_worker_from_the_count_in_its_heartbeat()
    {
        using var server = Start(workers: 1, "graceful_timeout = 5\nmax_requests = 5\n");
        var pid = server.WaitForWorkers(1)[0];
        for (int i = 0; i < 5; i++) Assert.Equal(200, server.Get("/").Status);
        server.WaitForLog($"Recycling worker 0 (pid {pid})", Bound); // once a heartbeat said PREFORK_REQUESTS=5
        var next = server.WaitForWorkers(1, also: pids => !pids.Contains(pid))[0];
        Assert.Equal(next, Pid(server));
    }

    [Fact]
    public void An_idle_worker_is_not_timed_out_it_keeps_sending_WATCHDOG()
    {
        using var server = Start(workers: 1, "graceful_timeout = 5\ntimeout = 3\n");
        var pid = server.WaitForWorkers(1)[0];
        // A request well within the timeout (the master counts a request's age plus the silence since the
        // last heartbeat, up to 1 s), then more than two timeouts of idleness: the heartbeat keeps the worker alive.
        Assert.Equal("slept 300 ms", server.Get("/slow?ms=300").BodyText);
        Assert.False(Wait.Until(() => server.Log.Contains("WORKER TIMEOUT"), TimeSpan.FromSeconds(7)), server.Log);
        Assert.Equal(pid, Pid(server));
    }

    [Fact]
    public void Stopping_the_master_lets_the_request_in_flight_finish()
    {
        using var server = Start(workers: 2);
        server.WaitForWorkers(2);
        using var client = RawHttp.Connect(server.Port, timeoutMs: 60_000);
        client.Send("GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
        WaitUntilTheServerHasRead(server.Port, client);
        server.Signal(Signum.SIGTERM);
        Assert.Equal("slept 3000 ms", new ResponseReader(client).Read().BodyText);
        Assert.True(server.WaitForExit(Bound), server.Log);
        server.AssertLogged("exited with code 0");
    }

    /// <summary>Waits until a worker has read what <paramref name="client"/> sent: the server side of the connection has nothing left in its receive queue (`ss`).</summary>
    private static void WaitUntilTheServerHasRead(int port, System.Net.Sockets.Socket client)
    {
        int clientPort = ((System.Net.IPEndPoint)client.LocalEndPoint!).Port;
        string last = "";
        Assert.True(Wait.Until(() =>
        {
            last = Repo.Run("ss", ["-Htn", "state", "established", $"( sport = :{port} and dport = :{clientPort} )"]).Output;
            var fields = last.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length > 0 && fields[0] == "0";
        }, Bound), "the request was not read: " + last);
    }
}
