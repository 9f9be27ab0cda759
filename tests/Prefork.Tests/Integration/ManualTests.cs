using Prefork.Config;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>`prefork --help` and the man page: complete, generated from the settings, and in step with deploy/prefork.1.</summary>
public sealed class ManualTests
{
    [Fact]
    public void Help_has_the_manual_sections_and_every_setting()
    {
        var (code, help) = PreforkServer.RunToExit("--help");
        Assert.Equal(0, code);
        var headings = new[] { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SETTINGS", "SIGNALS", "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES" };
        var lines = help.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(headings, lines.Where(l => headings.Contains(l)));
        foreach (var s in Settings.All)
        {
            Assert.Contains(Settings.LongFlag(s), help);
            Assert.Contains($"Key: {s.Key}.", help.Replace("\n              ", " "));
        }
        foreach (var name in new[] { "NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS", "HUP", "TERM", "USR1", "--check-config", "--version" })
            Assert.Contains(name, help);
        // 80 columns, except a command line that cannot be broken.
        Assert.All(lines.Where(l => l.Length > 80), l => Assert.StartsWith("       prefork ", l));
    }

    [Fact]
    public void The_man_page_in_deploy_is_generated_from_the_code_and_renders_without_warnings()
    {
        var (code, roff) = PreforkServer.RunToExit("--man");
        Assert.Equal(0, code);
        Assert.True(roff == File.ReadAllText(Repo.File("deploy/prefork.1")),
            "deploy/prefork.1 is out of date: regenerate it with `prefork --man > deploy/prefork.1`");
        var page = Path.Combine(Path.GetTempPath(), $"prefork-{Guid.NewGuid():N}.1");
        File.WriteAllText(page, roff);
        try
        {
            // The page is UTF-8 (the command setting's doc has "…"): say so, as man(1) does through preconv;
            // groff alone reads Latin-1 outside a UTF-8 locale and warns on every such byte.
            var (groff, warnings) = Repo.Run("groff", ["-Kutf8", "-man", "-Tutf8", "-ww", "-z", page]);
            Assert.Equal(0, groff);
            Assert.Equal("", warnings.Trim());
        }
        finally { File.Delete(page); }
    }
}
