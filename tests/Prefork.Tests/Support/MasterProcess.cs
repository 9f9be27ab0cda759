using System.Diagnostics;
using System.Text.Json.Nodes;
using Prefork.Control;
using Mono.Unix.Native;

namespace Prefork.Tests.Support;

/// <summary>
/// A `prefork` master the test started: its log, its workers, signals. Disposing stops it (TERM,
/// then KILL) and every worker it was seen with, by pid, and deletes its folder.
/// </summary>
public abstract class MasterProcess : IDisposable
{
    private readonly CapturedOutput _output;
    private readonly HashSet<int> _seenWorkers = [];

    public Process Master { get; }
    public int MasterPid => Master.Id;
    public string Directory { get; }
    public string ConfigPath { get; }
    public string Log => _output.Text;

    protected MasterProcess(Process master, string directory, string configPath)
    {
        Master = master;
        _output = new CapturedOutput(master);
        Directory = directory;
        ConfigPath = configPath;
    }

    /// <summary>
    /// The lines every test's config has unless its <paramref name="toml"/> says otherwise (the sample
    /// app, found beside the tests, and a graceful_timeout of 10 s), then <paramref name="toml"/>.
    /// </summary>
    protected static string ConfigText(string toml) =>
        (toml.Contains("app =") || IsCommand(toml) ? "" : "app = \"Prefork.SampleApp:Prefork.SampleApp.SampleApplication\"\n") +
        (IsCommand(toml) ? "" : $"app_path = [\"{AppContext.BaseDirectory}\"]\n") +
        (toml.Contains("graceful_timeout") ? "" : "graceful_timeout = 10\n") +
        toml + "\n";

    /// <summary>A config of command workers: the gateway's settings would only draw a warning.</summary>
    protected static bool IsCommand(string toml) => toml.Contains("command =");

    public void Signal(Signum signal) => Syscall.kill(MasterPid, signal);

    /// <summary>Waits (bounded) for the master to exit, and then for its last output lines to reach <see cref="Log"/>.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!Master.WaitForExit(timeout)) return false;
        Master.WaitForExit(); // the timed overload does not wait for the redirected output
        return true;
    }

    public void WaitForLog(string text, TimeSpan timeout, int occurrences = 1) => _output.WaitFor(text, timeout, occurrences);

    /// <summary>
    /// Asserts that the master logged <paramref name="text"/>, waiting briefly for it: its output is read
    /// from two pipes on other threads, so a line can reach <see cref="Log"/> after an event seen
    /// another way (a status reply, a response, a pid) that it preceded.
    /// </summary>
    public void AssertLogged(string text) => WaitForLog(text, TimeSpan.FromSeconds(10));

    /// <summary>The master's status as `prefork ctl status --json` gives it, asked on its control socket (the default, in its folder).</summary>
    public JsonObject Status()
    {
        var reply = Ctl.Ask(Path.Combine(Directory, "prefork.ctl"), new JsonObject { ["command"] = "status" });
        return reply["data"] as JsonObject ?? throw new IOException("the master answered: " + reply.ToJsonString()); // e.g. not serving status yet
    }

    /// <summary>
    /// Waits until generation <paramref name="generation"/> (or a later one) serves at full strength, with
    /// <paramref name="workers"/> as its target when given: the state itself, read on the control socket.
    /// </summary>
    public void WaitForGeneration(int generation, TimeSpan timeout, int? workers = null)
    {
        JsonObject? last = null;
        bool Reached()
        {
            try { last = Status(); }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException) { return false; } // not listening yet
            return last["generation"]!.GetValue<int>() >= generation && last["ready"]!.GetValue<bool>()
                && (workers is null || last["target_workers"]!.GetValue<int>() == workers);
        }
        if (!Wait.Until(Reached, timeout))
            throw new TimeoutException($"generation {generation}{(workers is null ? "" : $" with {workers} workers")} not ready within {timeout}; last status: {last?.ToJsonString() ?? "none"}. Log:\n{Log}");
    }

    /// <summary>Live worker pids: the master's child processes, from /proc (remembered for <see cref="Dispose"/>).</summary>
    public IReadOnlyList<int> WorkerPids()
    {
        var pids = Processes.ChildrenOf(MasterPid);
        lock (_seenWorkers) _seenWorkers.UnionWith(pids);
        return pids;
    }

    public void Dispose()
    {
        try { WorkerPids(); } catch (IOException) { }
        lock (_seenWorkers) Processes.Stop(Master, Signum.SIGTERM, TimeSpan.FromSeconds(15), _seenWorkers);
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }
}
