using Mono.Unix.Native;
using Prefork.Config;

namespace Prefork.Master;

/// <summary>--check-config for command workers: the program must be there and executable, as the shell will look for it.</summary>
public static class CommandCheck
{
    /// <summary>What is wrong with `command`'s program, or null when it can be run.</summary>
    public static string? Problem(GatewayConfig config)
    {
        var program = config.Command[0];
        var folder = WorkerSpawner.WorkingDirectory(config);
        if (!Directory.Exists(folder)) return $"the workers' folder {folder} does not exist";
        if (program.Contains('/'))
            return IsExecutable(Path.GetFullPath(program, folder)) ? null : $"command program {program} is not an executable file (from {folder})";
        var path = config.RawEnv.FirstOrDefault(e => e.StartsWith("PATH=", StringComparison.Ordinal))?[5..]
                   ?? Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin";
        return path.Split(':').Any(dir => IsExecutable(Path.Combine(dir.Length == 0 ? "." : dir, program))) ? null
            : $"command program {program} is not found in PATH ({path})";
    }

    private static bool IsExecutable(string file) => File.Exists(file) && Syscall.access(file, AccessModes.X_OK) == 0;
}
