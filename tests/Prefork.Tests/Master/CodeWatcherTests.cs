using Prefork.Config;
using Prefork.Master;

namespace Prefork.Tests.Master;

/// <summary>`reload = true`'s decisions on a manual clock and a real file: what counts as a change, and when it is acted on.</summary>
public sealed class CodeWatcherTests : IDisposable
{
    private readonly ManualClock _clock = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("prefork-watch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private GatewayConfig Config(string file) => ConfigLoader.Load(null,
        [new("reload", "true"), new("reload_extra_files", file), new("app", "Nowhere:Nothing")]);

    [Fact]
    public void A_change_made_before_the_first_loop_turn_counts_once_the_files_settle()
    {
        var file = Path.Combine(_dir, "settings.json");
        File.WriteAllText(file, "{}");
        var config = Config(file);
        var watcher = new CodeWatcher(_clock);
        watcher.Prime(config); // the master starts: what its first workers load

        // The workers boot; the file changes before the loop's first look.
        File.WriteAllText(file, "{\"changed\": true}");
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(watcher.Changed(config));                 // seen, not yet still for a second
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(file, watcher.Changed(config));          // settled: one reload
        _clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Null(watcher.Changed(config));                 // and only one
    }

    [Fact]
    public void Nothing_changes_nothing_and_a_watcher_with_reload_off_never_reports()
    {
        var file = Path.Combine(_dir, "settings.json");
        File.WriteAllText(file, "{}");
        var watcher = new CodeWatcher(_clock);
        watcher.Prime(Config(file));
        for (int i = 0; i < 3; i++)
        {
            _clock.Advance(TimeSpan.FromSeconds(1));
            Assert.Null(watcher.Changed(Config(file)));
        }
        var off = ConfigLoader.Load(null, [new("reload_extra_files", file)]);
        var idle = new CodeWatcher(_clock);
        idle.Prime(off);
        File.WriteAllText(file, "{\"changed\": true}");
        _clock.Advance(TimeSpan.FromSeconds(3));
        Assert.Null(idle.Changed(off));
    }
}
