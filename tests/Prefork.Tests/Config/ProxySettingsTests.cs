using Prefork.Config;

namespace Prefork.Tests.Config;

/// <summary>The proxy section: defaults as Gunicorn's, and bad values refused naming key, value and what is allowed.</summary>
public sealed class ProxySettingsTests
{
    [Fact]
    public void Defaults_are_Gunicorns()
    {
        var config = ConfigLoader.Parse(null, null);
        Assert.Equal(["127.0.0.1", "::1"], config.Get(Settings.ForwardedAllowIps));
        Assert.Equal(["127.0.0.1", "::1"], config.Get(Settings.ProxyAllowIps));
        Assert.False(config.Get(Settings.ProxyProtocol));
        Assert.Equal(
            [new("X-FORWARDED-PROTOCOL", "ssl"), new("X-FORWARDED-PROTO", "https"), new("X-FORWARDED-SSL", "on")],
            config.SecureSchemeHeaders);
        // Appended at the end, in a section of their own.
        Assert.Equal(["forwarded_allow_ips", "secure_scheme_headers", "proxy_protocol", "proxy_allow_ips"],
            Settings.All.Where(s => s.Section == "proxy").Select(s => s.Key));
    }

    [Fact]
    public void Good_values_are_taken()
    {
        var config = ConfigLoader.Parse("""
            forwarded_allow_ips = ["10.0.0.0/8", "fd00::/8", "192.0.2.7", "*"]
            secure_scheme_headers = ["X-Scheme = https", "Front-End-Https=on"]
            proxy_protocol = true
            proxy_allow_ips = "10.1.2.3"
            """, null);
        Assert.Equal(["10.0.0.0/8", "fd00::/8", "192.0.2.7", "*"], config.Get(Settings.ForwardedAllowIps));
        Assert.Equal([new("X-Scheme", "https"), new("Front-End-Https", "on")], config.SecureSchemeHeaders);
        Assert.True(config.Get(Settings.ProxyProtocol));
        Assert.Equal(["10.1.2.3"], config.Get(Settings.ProxyAllowIps));
        Assert.Empty(ConfigLoader.Parse("secure_scheme_headers = []", null).SecureSchemeHeaders);
    }

    [Theory]
    [InlineData("forwarded_allow_ips = [\"10.0.0.0/33\"]", "forwarded_allow_ips", "\"10.0.0.0/33\"", "CIDR blocks")]
    [InlineData("forwarded_allow_ips = [\"localhost\"]", "forwarded_allow_ips", "\"localhost\"", "IP addresses")]
    [InlineData("proxy_allow_ips = [\"10.1\"]", "proxy_allow_ips", "\"10.1\"", "IP addresses")]
    [InlineData("proxy_allow_ips = [\"::1/129\"]", "proxy_allow_ips", "\"::1/129\"", "CIDR blocks")]
    [InlineData("secure_scheme_headers = [\"X-Forwarded-Proto\"]", "secure_scheme_headers", "\"X-Forwarded-Proto\"", "\"HEADER=value\" pairs")]
    [InlineData("secure_scheme_headers = [\"Bad Header=on\"]", "secure_scheme_headers", "\"Bad Header=on\"", "\"HEADER=value\" pairs")]
    [InlineData("secure_scheme_headers = [\"X-Ssl=\"]", "secure_scheme_headers", "\"X-Ssl=\"", "\"HEADER=value\" pairs")]
    [InlineData("proxy_protocol = \"yes\"", "proxy_protocol", "\"yes\"", "true or false")]
    [InlineData("forwarded_allow_ips = 7", "forwarded_allow_ips", "7", "a list of IP addresses")]
    public void Bad_values_are_refused_naming_key_value_and_what_is_allowed(string toml, string key, string value, string allowed)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(toml, "gateway.toml"));
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains(value, e.Message);
        Assert.Contains(allowed, e.Message);
    }

    [Fact]
    public void Command_line_values_are_checked_too()
    {
        var e = Assert.Throws<ConfigException>(() =>
            ConfigLoader.Parse(null, null, [new("forwarded_allow_ips", "10.0.0.0/8"), new("forwarded_allow_ips", "ten")]));
        Assert.Contains("'forwarded_allow_ips'", e.Message);
        Assert.Contains("\"ten\"", e.Message);
    }
}
