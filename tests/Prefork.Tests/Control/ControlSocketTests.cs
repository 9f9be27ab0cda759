using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Control;

/// <summary>`prefork ctl` against a real master: every command, scaling under load, garbage on the socket, another uid.</summary>
[LongClass]
public sealed class ControlSocketTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static JsonObject StatusJson(PreforkServer server)
    {
        var (code, output) = server.Ctl("status", "--json");
        Assert.True(code == 0, output);
        return (JsonObject)JsonNode.Parse(output)!;
    }

    private static string SocketPath(PreforkServer server) => Path.Combine(server.Directory, "prefork.ctl");

    [Fact]
    public void Every_command_does_what_it_says_and_exits_with_a_code_scripts_can_use()
    {
        using var server = PreforkServer.Start(workers: 2);
        var pids = server.WaitForWorkers(2);

        // status: JSON with a workers array; the socket is the master's own, mode 0600.
        var status = StatusJson(server);
        Assert.Equal(server.MasterPid, status["master_pid"]!.GetValue<int>());
        var workers = status["workers"]!.AsArray();
        Assert.Equal(pids.Order(), workers.Select(w => w!["pid"]!.GetValue<int>()).Order());
        Assert.Equal([0, 1], workers.Select(w => w!["index"]!.GetValue<int>()).Order());
        Assert.All(workers, w => Assert.Equal((1, "serving"), (w!["generation"]!.GetValue<int>(), w["state"]!.ToString())));
        Assert.Equal("0600", Convert.ToString((int)File.GetUnixFileMode(SocketPath(server)), 8).PadLeft(4, '0'));
        var human = server.Ctl("status");
        Assert.Contains("generation  1, serving, ready", human.Output);
        Assert.Equal(0, server.Ctl("status", "--ready").ExitCode);

        // top, piped: frames one after another, a second apart.
        var top = server.Ctl("top", "-n", "2");
        Assert.Equal(0, top.ExitCode);
        Assert.Equal(2, top.Output.Split("generation  1, serving").Length - 1);
        Assert.Equal(2, top.Output.Split("PID ").Length - 1);

        // workers and dump, with a request in flight.
        HttpResponse? slowResponse = null;
        var slow = new Thread(() => slowResponse = RawHttp.Get(server.Port, "/slow?ms=10000", timeoutMs: 60_000));
        slow.Start();
        Assert.True(Wait.Until(() => server.Ctl("dump").Output.Contains("GET /slow"), Bound), server.Ctl("dump").Output);
        var table = server.Ctl("workers").Output;
        Assert.All(pids, pid => Assert.Contains(pid.ToString(), table));
        Assert.Contains("GET /slow (", table);
        Assert.True(slow.Join(TimeSpan.FromSeconds(90)), "the slow request ended");
        Assert.Equal(200, slowResponse?.Status);
        Assert.Contains("workers = 2", server.Ctl("config").Output);

        // The request total survives a worker's replacement.
        for (int i = 0; i < 20; i++) Assert.Equal(200, server.Get("/").Status);
        Assert.True(Wait.Until(() => StatusJson(server)["counters"]!["requests"]!.GetValue<long>() >= 21, Bound));
        var kill = server.Ctl("kill", pids[0].ToString());
        Assert.True(kill.ExitCode == 0, kill.Output);
        server.WaitForWorkers(2, Bound, now => !now.Contains(pids[0]));
        Assert.True(StatusJson(server)["counters"]!["requests"]!.GetValue<long>() >= 21);
        Assert.True(Wait.Until(() => StatusJson(server)["counters"]!["exits_by_reason"]?["ctl"]?.GetValue<long>() == 1, Bound));

        // recycle: the replacement first, then the old one retires.
        var recycle = server.Ctl("recycle", pids[1].ToString());
        Assert.True(recycle.ExitCode == 0, recycle.Output);
        server.WaitForLog($"(pid {pids[1]}): asked by prefork ctl", Bound);
        server.WaitForWorkers(2, Bound, now => !now.Contains(pids[1]));

        // scale N, +N, -N.
        Assert.Equal(0, server.Ctl("scale", "3").ExitCode);
        server.WaitForWorkers(3, Bound);
        Assert.Equal(0, server.Ctl("scale", "-2").ExitCode);
        server.WaitForWorkers(1, Bound);
        Assert.Contains("target workers now 2", server.Ctl("scale", "+1").Output);
        server.WaitForWorkers(2, Bound);

        // Refusals and mistakes.
        var none = server.Ctl("kill", "1");
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("no worker has pid 1", none.Output);
        Assert.Equal(1, server.Ctl("scale", "0").ExitCode);
        Assert.Equal(2, server.Ctl("frobnicate").ExitCode);
        Assert.Equal(3, PreforkServer.RunToExit("ctl", "--socket", Path.Combine(server.Directory, "nothing.ctl"), "status").ExitCode);

        // reopen, reload.
        Assert.Equal(0, server.Ctl("reopen").ExitCode);
        server.WaitForLog("reopening log files", Bound);
        var reload = server.Ctl("reload");
        Assert.True(reload.ExitCode == 0, reload.Output);
        server.WaitForGeneration(2, Bound);
        Assert.True(Wait.Until(() => server.Ctl("status", "--ready").ExitCode == 0, Bound));
        File.WriteAllText(server.ConfigPath, File.ReadAllText(server.ConfigPath).Replace("workers = 2", "workers = \"many\""));
        var refused = PreforkServer.RunToExit("ctl", "--socket", SocketPath(server), "reload"); // -c would now fail to load
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("reload refused", refused.Output);

        // stop: returns once the master has drained and exited, and the socket is gone.
        var stop = PreforkServer.RunToExit("ctl", "--socket", SocketPath(server), "stop");
        Assert.True(stop.ExitCode == 0, stop.Output);
        Assert.True(server.Master.HasExited);
        Assert.False(File.Exists(SocketPath(server)));
    }

    [Fact]
    public void Ready_is_false_after_WINCH_and_true_again_after_HUP()
    {
        using var server = PreforkServer.Start(workers: 2);
        server.WaitForWorkers(2);
        Assert.Equal(0, server.Ctl("status", "--ready").ExitCode);
        server.Signal(Signum.SIGWINCH);
        Assert.True(Wait.Until(() => server.Ctl("status", "--ready").ExitCode == 1, Bound));
        server.Signal(Signum.SIGHUP);
        Assert.True(Wait.Until(() => server.Ctl("status", "--ready").ExitCode == 0, Bound), server.Log);
    }

    [Fact]
    public void Scaling_up_and_down_under_load_loses_no_request()
    {
        using var server = PreforkServer.Start("worker_class = \"threads\"\nthreads = 4", workers: 2);
        server.WaitForWorkers(2);
        // Load for as long as the scaling takes here (stopped after the last step), flowing before the first.
        using var load = Wrk.Start(server.Port, connections: 20, seconds: 110, paceMs: 5);
        Assert.True(Wait.Until(() => server.Status()["counters"]!["requests"]!.GetValue<long>() > 0, Bound), "no request served under load");
        var latencies = new List<double>();
        foreach (var (arg, count) in new[] { ("4", 4), ("1", 1), ("+2", 3), ("-1", 2) })
        {
            var watch = Stopwatch.StartNew();
            var reply = server.Ctl("scale", arg);
            latencies.Add(watch.Elapsed.TotalMilliseconds);
            Assert.True(reply.ExitCode == 0, reply.Output);
            server.WaitForWorkers(count, Bound);
        }
        Thread.Sleep(300); // some load on the last count too
        var result = load.Stop();
        Assert.True(result.Requests > 500, result.Output);
        Assert.True(result.Failures == 0, result + "\n" + server.Log);
        Console.WriteLine($"prefork ctl scale under load: {string.Join(", ", latencies.Select(l => $"{l:F0} ms"))} (process start included)");
    }

    [Fact]
    public void Garbage_oversized_and_silent_clients_get_an_error_or_are_dropped_and_the_master_serves_on()
    {
        using var server = PreforkServer.Start(workers: 1);
        server.WaitForWorkers(1);
        var path = SocketPath(server);

        // A silent client holds a connection open; it must not block anyone.
        using var silent = Connect(path);
        var held = Stopwatch.StartNew();
        Assert.Contains("\"status\":\"error\"", Exchange(path, "\u0000\u00ff not json {{{\n"u8.ToArray()));
        Assert.Contains("one JSON object per line", Exchange(path, "[1,2]\n"u8.ToArray()));
        Assert.Contains("unknown command", Exchange(path, "{\"command\":\"explode\"}\n"u8.ToArray()));
        Assert.Contains("no command", Exchange(path, "{\"id\":7}\n"u8.ToArray()));
        Assert.Contains("\"id\":9,\"status\":\"ok\"", Exchange(path, "{\"id\":9,\"command\":\"status\"}\n"u8.ToArray()));
        var huge = Encoding.UTF8.GetBytes("{\"command\":\"status\",\"pad\":\"" + new string('x', 100_000));
        Assert.Contains("request longer than", Exchange(path, huge));
        Assert.Equal(0, server.Ctl("status").ExitCode);
        Assert.Equal(200, server.Get("/").Status);

        // The silent one is dropped after the control socket's timeout (5 s).
        silent.ReceiveTimeout = 30_000;
        Assert.Equal(0, silent.Receive(new byte[16]));
        Assert.InRange(held.Elapsed.TotalSeconds, 4.5, 30);
        Assert.DoesNotContain("Unexpected error", server.Log);
    }

    [RootFact] // only root can run the client as another user
    public void A_client_running_as_another_user_is_refused()
    {
        using var server = PreforkServer.Start(workers: 1);
        server.WaitForWorkers(1);
        var path = SocketPath(server);
        string[] asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", PreforkServer.Executable, "ctl", "--socket", path, "status"];

        // Mode 0600: the kernel refuses the connection.
        var denied = Repo.Run("setpriv", asNobody, Path.GetTempPath(), Bound);
        Assert.Equal(3, denied.ExitCode);
        // Were the file opened up, SO_PEERCRED still refuses another uid.
        File.SetUnixFileMode(path, (UnixFileMode)0b110_110_110);
        var refused = Repo.Run("setpriv", asNobody, Path.GetTempPath(), Bound);
        Assert.True(refused.ExitCode == 1, refused.Output);
        Assert.Contains("runs as uid 65534, neither the master's (0) nor root", refused.Output);
        server.WaitForLog("Control socket: refused a client", Bound);
        Assert.Equal(0, server.Ctl("status").ExitCode);
    }

    private static Socket Connect(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 30_000 };
        socket.Connect(new UnixDomainSocketEndPoint(path));
        return socket;
    }

    /// <summary>Sends bytes on a fresh connection and returns the first reply line.</summary>
    private static string Exchange(string path, byte[] request)
    {
        using var socket = Connect(path);
        try { socket.Send(request); }
        catch (SocketException) { } // the master may close on an oversized request before all of it is sent
        var reply = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int n;
            while (!reply.ToArray().Contains((byte)'\n') && (n = socket.Receive(buffer)) > 0) reply.Write(buffer, 0, n);
        }
        catch (SocketException e) { reply.Write(Encoding.UTF8.GetBytes($"[{e.SocketErrorCode}]")); }
        return Encoding.UTF8.GetString(reply.ToArray());
    }
}
