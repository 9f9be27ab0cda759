using System.Reflection;
using Prefork.Config;

namespace Prefork.Tests.Config;

/// <summary>The typed declarations in <see cref="Settings"/>: each one listed once, each read as its type.</summary>
public sealed class SettingsTests
{
    [Fact]
    public void Every_declared_setting_is_in_All_once_in_declaration_order()
    {
        // Fields are emitted in declaration order; All is the order --help, the manual and the README show.
        var declared = typeof(Settings).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.FieldType.IsAssignableTo(typeof(Setting)))
            .OrderBy(f => f.MetadataToken)
            .Select(f => ((Setting)f.GetValue(null)!).Key);
        Assert.Equal(declared, Settings.All.Select(s => s.Key));
        Assert.Equal(Settings.All.Count, Settings.All.Select(s => s.Key).Distinct().Count());
    }

    [Fact]
    public void A_setting_reads_as_the_type_it_is_declared_with()
    {
        var c = ConfigLoader.Parse("workers = 7\nmax_requests = 5000000000\nproxy_protocol = true\nraw_env = [\"A=1\"]\nready = \"delay:4\"\n", null);
        int workers = c.Get(Settings.Workers);
        long maxRequests = c.Get(Settings.MaxRequests);
        bool proxyProtocol = c.Get(Settings.ProxyProtocol);
        IReadOnlyList<string> rawEnv = c.Get(Settings.RawEnv);
        string ready = c.Get(Settings.Ready);
        Assert.Equal((7, 5_000_000_000L, true, "delay:4", 4), (workers, maxRequests, proxyProtocol, ready, c.ReadyDelaySeconds));
        Assert.Equal(["A=1"], rawEnv);
    }

    [Fact]
    public void A_declaration_that_cannot_be_read_as_its_type_is_refused()
    {
        // An int setting stored as long needs a range that fits an int; a type no setting kind reads is refused.
        Assert.Contains("must fit", Assert.Throws<ArgumentException>(() => new Setting<int>("n", 0, "s", "doc", Min: 0)).Message);
        Assert.Contains("no setting type", Assert.Throws<ArgumentException>(() => new Setting<DateTime>("d", default, "s", "doc")).Message);
        Assert.Equal(SettingType.Integer, new Setting<long>("l", 1, "s", "doc", Min: 0).Type);
    }
}
