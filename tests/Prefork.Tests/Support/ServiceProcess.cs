using System.Diagnostics;

namespace Prefork.Tests.Support;

/// <summary>
/// `prefork` started the way a service manager starts it: with an environment the test chooses
/// (NOTIFY_SOCKET, WATCHDOG_USEC…) and optionally under a launcher that execs it, such as
/// Debian's systemd-socket-activate (which keeps the pid, so <see cref="MasterProcess.MasterPid"/> is the master's).
/// </summary>
public sealed class ServiceProcess : MasterProcess
{
    private ServiceProcess(Process process, string directory, string configPath) : base(process, directory, configPath) { }

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
}
