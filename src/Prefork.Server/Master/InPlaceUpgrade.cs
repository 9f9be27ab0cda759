using System.Collections;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Mono.Unix.Native;
using Prefork.Config;
using Serilog;
using Prefork.Interop;

namespace Prefork.Master;

/// <summary>
/// USR2: replace the master's program with the one now on disk, keeping its pid (exec in place,
/// as Puma and einhorn do), so systemd and pidfiles need no special dance. The listening
/// sockets and the pipes to the running workers survive the exec (FD_CLOEXEC cleared); the new
/// image adopts the workers and replaces them, readiness-gated, with workers of the new program.
/// A new program that cannot even check its config is refused before anything is touched.
/// </summary>
public static class InPlaceUpgrade
{
    private const string StateVariable = "PREFORK_UPGRADE_STATE";

    public sealed record ListenerState(string Text, int Fd);
    /// <summary>
    /// One worker handed over. Its times are monotonic timestamps (<see cref="Monotonic"/>), which stay comparable
    /// across the exec; null when the previous image predates them (it sent a wall-clock SpawnedAt, ignored).
    /// A command worker carries its stop signal's name (null for a gateway worker), its ready delay and whether it sent WATCHDOG=1.
    /// </summary>
    public sealed record WorkerState(int Pid, int Index, int Generation, int PipeFd, bool Booted, long Requests, long MaxRequests,
        long? SpawnedMonotonic, long? LastHeardMonotonic, string? StopSignal = null, int ReadyDelaySeconds = 0, bool Watchdog = false);
    /// <summary>
    /// NotifyFd: the command workers' notify socket, bound to a name the workers already know; ControlFd, MetricsFd: the
    /// master's own listeners; Draining: `prefork ctl drain` goes on (each null or false from an older image).
    /// </summary>
    public sealed record State(int Generation, List<ListenerState> Listeners, List<WorkerState> Workers, int? NotifyFd = null,
        int? ControlFd = null, int? MetricsFd = null, bool Draining = false);

    /// <summary>The state handed over by the previous image, if this process is the result of an upgrade; cleared from the environment.</summary>
    public static State? Take()
    {
        var json = Environment.GetEnvironmentVariable(StateVariable);
        if (string.IsNullOrEmpty(json)) return null;
        Environment.SetEnvironmentVariable(StateVariable, null); // workers must not see it
        return JsonSerializer.Deserialize(json, UpgradeJson.Default.State);
    }

    /// <summary>Runs the new program's --check-config; returns null when it passed, or why not.</summary>
    public static string? Preflight(string? configPath, IReadOnlyList<KeyValuePair<string, string>> overrides)
    {
        var psi = ServerInfo.StartInfo("--check-config");
        psi.RedirectStandardOutput = psi.RedirectStandardError = true;
        if (configPath is not null) { psi.ArgumentList.Add("-c"); psi.ArgumentList.Add(configPath); }
        foreach (var (key, value) in overrides) psi.ArgumentList.Add($"{Settings.LongFlag(Settings.Find(key)!)}={value}");
        try
        {
            using var p = Process.Start(psi)!;
            var output = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(60_000)) { p.Kill(); return "the new program's --check-config did not finish within 60 s"; }
            return p.ExitCode == 0 ? null : $"the new program's --check-config exited {p.ExitCode}: {output.Result.Trim()}";
        }
        catch (Exception e)
        {
            return $"the new program could not be started: {e.Message}";
        }
    }

    /// <summary>Execs the program on disk with the state in its environment. Returns only if exec failed, with why.</summary>
    public static string Exec(State state, IEnumerable<int> inheritedFds)
    {
        var fds = inheritedFds.ToList();
        foreach (var fd in fds) Syscall.fcntl(fd, FcntlCommand.F_SETFD, 0);
        Log.Information("Executing {Exe} in place (pid {Pid} stays)", Environment.ProcessPath, Environment.ProcessId);
        Log.CloseAndFlush();
        var failed = ExecSelf(StateVariable, JsonSerializer.Serialize(state, UpgradeJson.Default.State));
        foreach (var fd in fds) Syscall.fcntl(fd, FcntlCommand.F_SETFD, 1); // back to private
        return failed;
    }

    /// <summary>
    /// Executes the program on disk with the exact argv this process was started with (/proc/self/cmdline)
    /// and its environment plus <paramref name="variable"/>; keeps the pid. Returns only if exec failed, with why.
    /// </summary>
    internal static string ExecSelf(string variable, string value)
    {
        var environment = new List<string>();
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
            if ((string)e.Key != variable) environment.Add($"{e.Key}={e.Value}");
        environment.Add($"{variable}={value}");
        // Each argument ends with a NUL: drop only the last one, or an empty last argument (`--control-socket ''`) is lost.
        var cmdline = Encoding.UTF8.GetString(File.ReadAllBytes("/proc/self/cmdline"));
        var argv = (cmdline.EndsWith('\0') ? cmdline[..^1] : cmdline).Split('\0');
        var exe = Environment.ProcessPath!;
        int errno = Libc.Exec(exe, argv, environment);
        return $"execve({exe}) failed: {NativeConvert.ToErrno(errno)}";
    }
}

/// <summary>The upgrade state's JSON metadata, generated at build time (no reflection: trimming and NativeAOT allow it).</summary>
[JsonSerializable(typeof(InPlaceUpgrade.State))]
internal sealed partial class UpgradeJson : JsonSerializerContext;
