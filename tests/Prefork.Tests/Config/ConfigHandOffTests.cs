using Prefork.Config;

namespace Prefork.Tests.Config;

/// <summary>The master hands its validated config to each worker; the worker must get exactly the same values.</summary>
public sealed class ConfigHandOffTests
{
    // Everything a hand-written TOML string got wrong: line breaks, quotes, backslashes, tabs, non-ASCII, control characters, NUL.
    private const string Awkward = "one\ntwo\r\nthree \"quoted\" 'single' \\back\\slash\\ \\n \ttab é 中文 😀 \u0001 \u0008 \u000c \u001b \u007f \u0085 \u0000 end\\";

    /// <summary>
    /// A master-side config with an awkward value in every string and string-list setting that accepts one,
    /// from the command line, on top of a config file (so the file path and base directory are handed over too).
    /// </summary>
    private static GatewayConfig AwkwardConfig()
    {
        var dir = Directory.CreateTempSubdirectory("prefork-handoff-").FullName;
        var path = Path.Combine(dir, "gateway.toml");
        File.WriteAllText(path, "workers = 3\nmax_requests = 12345\nproxy_protocol = true\n");
        var overrides = new List<KeyValuePair<string, string>>();
        var refused = new List<Setting>();
        foreach (var s in Settings.All.Where(s => s.Type is SettingType.String or SettingType.StringList))
        {
            // A setting with a form (KEY=value pairs…) gets the awkward text where the form allows it.
            var accepted = new[] { Awkward, "X=" + Awkward }.FirstOrDefault(v => Accepts(s, v));
            if (accepted is null) { refused.Add(s); continue; }
            overrides.Add(new(s.Key, accepted));
            if (s.Type == SettingType.StringList) overrides.Add(new(s.Key, "second " + accepted)); // and a list of two
        }
        // Only settings that restrict their values may refuse it: every free-text one is exercised.
        Assert.All(refused, s => Assert.True(s.Choices is not null || s.Form is not null, $"{s.Key} refused free text"));
        Assert.Contains(overrides, o => o.Key == "on_reload");
        try { return ConfigLoader.Load(path, overrides); }
        finally { Directory.Delete(dir, true); }
    }

    private static bool Accepts(Setting s, string value)
    {
        try { ConfigLoader.Parse(null, null, [new(s.Key, value)]); return true; }
        catch (ConfigException) { return false; }
    }

    private static void AssertSameValues(GatewayConfig master, GatewayConfig worker)
    {
        foreach (var s in Settings.All)
        {
            object expected = master[s.Key], actual = worker[s.Key];
            bool same = expected is string[] a && actual is string[] b ? a.SequenceEqual(b) : expected.Equals(actual);
            Assert.True(same, $"{s.Key}: master has {ConfigLoader.FormatToml(expected)}, the worker got {ConfigLoader.FormatToml(actual)}");
        }
    }

    [Fact]
    public void A_worker_gets_exactly_the_values_its_master_validated()
    {
        var master = AwkwardConfig();
        var worker = ConfigHandOff.Read(master.HandOff, ConfigHandOff.WriteSecrets(master));
        AssertSameValues(master, worker);
        Assert.Equal(master.FilePath, worker.FilePath);
        Assert.Equal(master.BaseDirectory, worker.BaseDirectory);
        Assert.DoesNotContain('\0', master.HandOff); // it travels in an environment variable
    }

    [Fact]
    public void Secrets_travel_apart_from_the_environment_hand_off()
    {
        var master = ConfigLoader.Parse("keyfile_password = \"s3cret-pass\"", null);
        Assert.DoesNotContain("s3cret-pass", master.HandOff); // readable in /proc/PID/environ for the worker's life
        var secrets = ConfigHandOff.WriteSecrets(master);
        Assert.Contains("s3cret-pass", secrets);
        Assert.Equal("", ConfigHandOff.Read(master.HandOff)[Settings.KeyFilePassword.Key]);
        Assert.Equal("s3cret-pass", ConfigHandOff.Read(master.HandOff, secrets)[Settings.KeyFilePassword.Key]);
        Assert.Null(ConfigHandOff.WriteSecrets(ConfigLoader.Parse(null, null)));
        // Each way carries only its own kind: a secret in the environment is refused, not taken.
        Assert.Contains("came by the wrong way", Assert.Throws<ConfigException>(() =>
            ConfigHandOff.Read("""{"Path":null,"Values":{"keyfile_password":"x"}}""")).Message);
    }

    [Fact]
    public void Print_config_writes_any_value_as_TOML_that_reads_back_the_same()
    {
        var master = AwkwardConfig();
        AssertSameValues(master, ConfigLoader.Parse(master.ToToml(), null));
    }

    [Theory]
    [InlineData("", "not set")]
    [InlineData("workers = 2", "could not be read")]
    [InlineData("""{"Path":null,"Values":{"wrokers":2}}""", "setting 'wrokers'")]
    [InlineData("""{"Path":null,"Values":{"workers":"two"}}""", "setting 'workers'")]
    [InlineData("""{"Path":null,"Values":{"workers":0}}""", "setting 'workers' = 0 is not allowed")]
    public void A_hand_off_a_worker_cannot_use_is_refused_with_the_reason(string handOff, string reason)
    {
        Assert.Contains(reason, Assert.Throws<ConfigException>(() => ConfigHandOff.Read(handOff)).Message);
    }
}
