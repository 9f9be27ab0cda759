using System.Diagnostics;
using System.Text;
using Mono.Unix.Native;

namespace Prefork.Tests.Support;

/// <summary>
/// `prefork` started the way a service manager starts it: with an environment the test chooses
/// (NOTIFY_SOCKET, WATCHDOG_USEC…) and optionally under a launcher that execs it, such as
/// Debian's systemd-socket-activate (which keeps the pid, so <see cref="Pid"/> is the master).
/// Disposing stops the master and every worker it was seen with, by pid.
/// </summary>
public sealed class ServiceProcess : IDisposable
{
    private readonly Process _process;
    private readonly CapturedOutput _output;
    private readonly HashSet<int> _seenWorkers = [];

    public string Directory { get; }
    public string ConfigPath { get; }
    public int Pid => _process.Id;
    public Process Process => _process;
    public string Log => _output.Text;

    private ServiceProcess(Process process, string directory, string configPath)
    {
        _process = process;
        Directory = directory;
        ConfigPath = configPath;
        _output = new CapturedOutput(process);
    }

    /// <summary>
    /// Writes <paramref name="toml"/> (plus the sample app and a short graceful_timeout) to a
    /// config file and runs `[launcher...] prefork -c FILE` with <paramref name="environment"/> added.
    /// </summary>
    public static ServiceProcess Start(string toml, IReadOnlyDictionary<string, string> environment, params string[] launcher) =>
        Launch(ConfigText(toml), environment, [.. launcher, PreforkServer.Executable]);

    /// <summary>Runs another `prefork` (an installed one) with the config file <paramref name="configPath"/>.</summary>
    public static ServiceProcess StartExecutable(string executable, string configPath) =>
        Launch(null, new Dictionary<string, string>(), [executable], configPath);

    private static ServiceProcess Launch(string? configText, IReadOnlyDictionary<string, string> environment, string[] command, string? configPath = null)
    {
        var dir = System.IO.Directory.CreateTempSubdirectory("prefork-service-").FullName;
        var config = configPath ?? Path.Combine(dir, "gateway.toml");
        if (configText is not null) File.WriteAllText(config, configText);
        var psi = new ProcessStartInfo(command[0])
        {
            WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var arg in command.Skip(1)) psi.ArgumentList.Add(arg);
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(config);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        return new ServiceProcess(Process.Start(psi)!, dir, config);
    }

    public static string ConfigText(string toml) =>
        toml + "\n" +
        (toml.Contains("app =") ? "" : "app = \"Prefork.SampleApp:Prefork.SampleApp.SampleApplication\"\n") +
        $"app_path = [\"{AppContext.BaseDirectory}\"]\n" +
        (toml.Contains("graceful_timeout") ? "" : "graceful_timeout = 10\n");

    public void Signal(Signum signal) => Syscall.kill(Pid, signal);

    /// <summary>Waits (bounded) for the process to exit, and then for its last output lines to reach <see cref="Log"/>.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout)) return false;
        _process.WaitForExit(); // the timed overload does not wait for the redirected output
        return true;
    }

    public void WaitForLog(string text, TimeSpan timeout, int occurrences = 1) => _output.WaitFor(text, timeout, occurrences);

    public int CountInLog(string text) => _output.Count(text);

    /// <summary>The master's live children (its workers), remembered for <see cref="Dispose"/>.</summary>
    public IReadOnlyList<int> Workers()
    {
        var pids = Processes.ChildrenOf(Pid);
        lock (_seenWorkers) _seenWorkers.UnionWith(pids);
        return pids;
    }

    public void Dispose()
    {
        try { Workers(); } catch (IOException) { }
        lock (_seenWorkers) Processes.Stop(_process, Signum.SIGTERM, TimeSpan.FromSeconds(15), _seenWorkers);
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}
