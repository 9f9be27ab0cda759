using Prefork.Config;
using Prefork.Tests.Support;

namespace Prefork.Tests.Config;

public sealed class ConfigLoaderTests
{
    private static GatewayConfig FromToml(string toml, params (string, string)[] overrides)
    {
        var path = Path.Combine(Path.GetTempPath(), $"prefork-config-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, toml);
        try { return ConfigLoader.Load(path, overrides.Select(o => new KeyValuePair<string, string>(o.Item1, o.Item2))); }
        finally { File.Delete(path); }
    }

    private static string Rejection(string toml) => Assert.Throws<ConfigException>(() => FromToml(toml)).Message;

    [Fact]
    public void Defaults_are_Gunicorns_where_Gunicorn_has_one_except_the_worker_class()
    {
        var c = ConfigLoader.Load(null);
        Assert.Equal(["127.0.0.1:8000"], c.Bind);
        Assert.Equal(1, c.Workers);
        Assert.Equal("threads", c.WorkerClass); // ours, chosen from the bench (Gunicorn's is sync)
        Assert.Equal(30, c.Timeout);
        Assert.Equal(30, c.GracefulTimeout);
        Assert.Equal(2, c.Keepalive);
        Assert.Equal(2048, c.Backlog);
        Assert.Equal(8190, c.LimitRequestLine);
        Assert.Equal(100, c.LimitRequestFields);
        Assert.Equal(8190, c.LimitRequestFieldSize);
    }

    [Fact]
    public void File_values_then_flags_win()
    {
        var c = FromToml("workers = 3\nbind = \"0.0.0.0:9000\"\n", ("workers", "5"));
        Assert.Equal(5, c.Workers);
        Assert.Equal(["0.0.0.0:9000"], c.Bind); // a single string is a one-element list
        var d = FromToml("bind = [\"a:1\"]\n", ("bind", "127.0.0.1:1"), ("bind", "unix:/tmp/s"));
        Assert.Equal(["127.0.0.1:1", "unix:/tmp/s"], d.Bind);
    }

    [Theory]
    [InlineData("workers = 0", "'workers' = 0", "an integer from 1 to 1024")]
    [InlineData("workers = \"4\"", "'workers' = \"4\"", "an integer from 1 to 1024")]
    [InlineData("worker_class = \"gevent\"", "'worker_class' = \"gevent\"", "one of \"sync\"")]
    [InlineData("timeout = -1", "'timeout' = -1", "from 0 to 86400")]
    [InlineData("loglevel = \"loud\"", "'loglevel' = \"loud\"", "\"debug\", \"info\"")]
    [InlineData("bind = [\"127.0.0.1\"]", "'bind' = \"127.0.0.1\"", "HOST:PORT")]
    [InlineData("bind = [\"127.0.0.1:99999\"]", "'bind' = \"127.0.0.1:99999\"", "from 0 to 65535")]
    [InlineData("bind = [\"::1:80\"]", "'bind' = \"::1:80\"", "brackets")]
    [InlineData("unix_socket_mode = \"rw\"", "'unix_socket_mode' = \"rw\"", "octal")]
    [InlineData("umask = \"22\"", "'umask' = \"22\"", "an octal file mode")]
    [InlineData("raw_env = [\"A=1\", \"NOEQUALS\"]", "'raw_env' = \"NOEQUALS\"", "\"KEY=value\"")]
    [InlineData("keepalive = true", "'keepalive' = true", "an integer")]
    [InlineData("command = [\"python3\", \"\"]", "'command' = \"\"", "non-empty strings")]
    [InlineData("ready = \"delay:0\"", "'ready' = \"delay:0\"", "\"notify\" or \"delay:SECONDS\" (1 to 3600)")]
    [InlineData("ready = \"soon\"", "'ready' = \"soon\"", "\"delay:SECONDS\"")]
    [InlineData("stop_signal = \"SIGTERM\"", "'stop_signal' = \"SIGTERM\"", "one of \"TERM\"")]
    [InlineData("listen_fdnames = [\"a:b\"]", "'listen_fdnames' = \"a:b\"", "without ':'")]
    [InlineData("listen_fdnames = [\"web\", \"admin\"]", "'listen_fdnames' has 2 names for 1 bind addresses", "at most one name per bind")]
    public void A_bad_value_names_the_key_the_value_and_what_is_allowed(string toml, string named, string allowed)
    {
        var message = Rejection(toml);
        Assert.Contains(named, message);
        Assert.Contains(allowed, message);
    }

    [Fact]
    public void Unknown_keys_are_rejected_with_a_suggestion()
    {
        Assert.Contains("unknown setting 'graceful_timout' (did you mean 'graceful_timeout'?)", Rejection("graceful_timout = 3"));
        Assert.Contains("not valid TOML", Rejection("workers = = 3"));
    }

    [Fact]
    public void Print_config_round_trips()
    {
        var c = FromToml("workers = 4\nbind = [\"127.0.0.1:1\", \"[::1]:2\"]\naccess_log_format = \"%(h)s \\\"%(r)s\\\"\"\n");
        var again = ConfigLoader.Parse(c.ToToml(), null);
        Assert.Equal(c.Values.Select(v => ConfigLoader.FormatToml(v.Value)), again.Values.Select(v => ConfigLoader.FormatToml(v.Value)));
    }

    [Fact]
    public void The_README_settings_table_is_generated_from_the_declarations()
    {
        var readme = File.ReadAllText(Repo.File("README.md"));
        int begin = readme.IndexOf("<!-- settings:begin -->", StringComparison.Ordinal);
        int end = readme.IndexOf("<!-- settings:end -->", StringComparison.Ordinal);
        Assert.True(begin >= 0 && end > begin, "README lacks the settings markers");
        var table = readme[(begin + "<!-- settings:begin -->".Length)..end].Trim();
        Assert.True(table == CommandLine.SettingsMarkdown().Trim(),
            "README's settings table is stale: replace it with the output of `prefork --settings-markdown`");
    }

    [Fact]
    public void The_shipped_configs_are_valid()
    {
        foreach (var file in Directory.GetFiles(Repo.File("config"), "*.toml").Append(Repo.File("gateway.toml")))
            ConfigLoader.Load(file); // throws with the key on any mistake
    }
}
