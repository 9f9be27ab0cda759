using System.Diagnostics;
using Prefork.Config;
using Prefork.Protocol;
using Serilog;

namespace Prefork.Master;

/// <summary>
/// Operators' hooks: shell commands from the config, run by the master with `/bin/sh -c` and the
/// event in the environment (PREFORK_HOOK, PREFORK_MASTER_PID, and the worker's details where
/// there is one). Those that gate a step (on_starting, on_exit) are waited for; the rest run
/// beside the master so a slow hook never stalls supervision.
/// </summary>
public static class Hooks
{
    // Hooks running beside the master; on_exit waits for them, so it is always the last to run.
    private static readonly HashSet<Process> Background = [];

    /// <summary>Runs the shell command the config gives <paramref name="setting"/> (Settings.OnStarting…), if any.</summary>
    public static void Run(GatewayConfig config, Setting<string> setting, IReadOnlyDictionary<string, string>? details = null, TimeSpan? wait = null)
    {
        var (hook, command) = (setting.Key, config.Get(setting));
        if (command.Length == 0) return;
        try
        {
            var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = config.BaseDirectory };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(command);
            psi.Environment["PREFORK_HOOK"] = hook;
            psi.Environment[WorkerEnvironment.EnvMasterPid] = Environment.ProcessId.ToString();
            foreach (var (k, v) in details ?? new Dictionary<string, string>()) psi.Environment[k] = v;
            var process = Process.Start(psi)!;
            if (wait is { } limit)
            {
                if (!process.WaitForExit(limit))
                {
                    Log.Warning("Hook {Hook} still running after {Seconds} s; going on without it", hook, limit.TotalSeconds);
                    return;
                }
                if (process.ExitCode != 0) Log.Warning("Hook {Hook} exited with code {Code}", hook, process.ExitCode);
                process.Dispose();
            }
            else
            {
                lock (Background) Background.Add(process);
                process.EnableRaisingEvents = true;
                process.Exited += (_, _) =>
                {
                    if (process.ExitCode != 0) Log.Warning("Hook {Hook} exited with code {Code}", hook, process.ExitCode);
                    lock (Background) Background.Remove(process);
                    process.Dispose();
                };
            }
        }
        catch (Exception e)
        {
            Log.Error("Hook {Hook} could not run: {Reason}", hook, e.Message);
        }
    }

    /// <summary>Waits, up to <paramref name="limit"/>, for the hooks still running beside the master.</summary>
    public static void WaitForBackground(TimeSpan limit)
    {
        long started = Stopwatch.GetTimestamp(); // monotonic: a wall-clock step neither cuts nor stretches the wait
        while (Stopwatch.GetElapsedTime(started) < limit)
        {
            lock (Background) if (Background.Count == 0) return;
            Thread.Sleep(20);
        }
        Log.Warning("Hooks still running after {Seconds} s; going on without them", limit.TotalSeconds);
    }

    public static Dictionary<string, string> WorkerDetails(WorkerHandle w) => new()
    {
        ["PREFORK_WORKER_PID"] = w.Pid.ToString(),
        [WorkerEnvironment.EnvWorkerIndex] = w.Index.ToString(),
        [WorkerEnvironment.EnvGeneration] = w.Generation.ToString(),
    };
}
