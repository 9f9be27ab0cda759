using Prefork.Config;
using Prefork.Worker;

namespace Prefork.Master;

/// <summary>
/// `reload = true` (Gunicorn's --reload, for development): the application's files are polled once a
/// second (size and modification time) from the master's loop: the app's assembly (for command
/// workers, the program's file) and reload_extra_files. A change counts once the files have been
/// still for a second, so a build that writes in several steps triggers one reload, not several.
/// </summary>
internal sealed class CodeWatcher(TimeProvider clock)
{
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1), Settle = TimeSpan.FromSeconds(1);

    private readonly Dictionary<string, (long Size, DateTime Modified)> _seen = [];
    private long _nextPoll = long.MinValue;
    private long? _changedAt;   // monotonic timestamp of the last change not yet acted on
    private string? _changed;

    /// <summary>
    /// Takes the files as they are before the first workers load them: a change from then on counts. (Taken
    /// at the first loop turn instead, after the workers booted, a change made meanwhile would go unseen.)
    /// </summary>
    public void Prime(GatewayConfig config) => Changed(config);

    /// <summary>The file that changed, once the files have settled; null otherwise (and when reload is off).</summary>
    public string? Changed(GatewayConfig config)
    {
        if (!config.Get(Settings.Reload) || clock.GetTimestamp() < _nextPoll) return null;
        _nextPoll = clock.After(Poll);
        foreach (var file in Files(config))
        {
            var info = new FileInfo(file);
            var state = info.Exists ? (info.Length, info.LastWriteTimeUtc) : (-1, DateTime.MinValue);
            if (_seen.TryGetValue(file, out var before) && before != state)
            {
                _changedAt = clock.GetTimestamp();
                _changed = file;
            }
            _seen[file] = state;
        }
        if (_changedAt is not { } at || clock.GetElapsedTime(at) < Settle) return null;
        _changedAt = null;
        return _changed;
    }

    /// <summary>What is watched: the app's assembly or the command's program, and reload_extra_files (relative to the config's folder).</summary>
    internal static IEnumerable<string> Files(GatewayConfig config)
    {
        if (config.RunsCommand)
        {
            if (ProgramPath(config) is { } program) yield return program;
        }
        else if (AppAssembly(config) is { } assembly) yield return assembly;
        foreach (var extra in config.Get(Settings.ReloadExtraFiles)) yield return Path.GetFullPath(extra, config.BaseDirectory);
    }

    private static string? AppAssembly(GatewayConfig config)
    {
        int colon = config.Get(Settings.App).LastIndexOf(':');
        if (colon <= 0) return null;
        try { return AppLoader.FindAssembly(config.Get(Settings.App)[..colon], config); }
        catch (AppLoadException) { return null; } // not there (yet): the next reload will say why
    }

    private static string? ProgramPath(GatewayConfig config)
    {
        var program = config.Get(Settings.Command)[0];
        if (program.Contains('/')) return Path.GetFullPath(program, WorkerSpawner.WorkingDirectory(config));
        var path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin";
        return path.Split(':').Select(dir => Path.Combine(dir.Length == 0 ? "." : dir, program)).FirstOrDefault(File.Exists);
    }
}
