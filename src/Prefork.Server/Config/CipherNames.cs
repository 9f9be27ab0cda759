using System.Net.Security;

namespace Prefork.Config;

/// <summary>
/// The `ciphers` setting: OpenSSL's cipher suite names (as Gunicorn and nginx take them) mapped
/// onto .NET's <see cref="TlsCipherSuite"/>, which names them as IANA does. IANA names are taken
/// as they are. Only whole suite names: OpenSSL's keywords (HIGH, !aNULL, @STRENGTH) are not.
/// </summary>
public static class CipherNames
{
    private static readonly Dictionary<string, TlsCipherSuite> OpenSsl = new(StringComparer.Ordinal)
    {
        // TLS 1.3: OpenSSL uses the IANA names.
        ["TLS_AES_128_GCM_SHA256"] = TlsCipherSuite.TLS_AES_128_GCM_SHA256,
        ["TLS_AES_256_GCM_SHA384"] = TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        ["TLS_CHACHA20_POLY1305_SHA256"] = TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        ["TLS_AES_128_CCM_SHA256"] = TlsCipherSuite.TLS_AES_128_CCM_SHA256,
        // TLS 1.2
        ["ECDHE-ECDSA-AES128-GCM-SHA256"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ["ECDHE-RSA-AES128-GCM-SHA256"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ["ECDHE-ECDSA-AES256-GCM-SHA384"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ["ECDHE-RSA-AES256-GCM-SHA384"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ["ECDHE-ECDSA-CHACHA20-POLY1305"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ["ECDHE-RSA-CHACHA20-POLY1305"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ["DHE-RSA-AES128-GCM-SHA256"] = TlsCipherSuite.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,
        ["DHE-RSA-AES256-GCM-SHA384"] = TlsCipherSuite.TLS_DHE_RSA_WITH_AES_256_GCM_SHA384,
        ["DHE-RSA-CHACHA20-POLY1305"] = TlsCipherSuite.TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ["ECDHE-ECDSA-AES128-SHA256"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
        ["ECDHE-RSA-AES128-SHA256"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
        ["ECDHE-ECDSA-AES256-SHA384"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
        ["ECDHE-RSA-AES256-SHA384"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
        ["ECDHE-ECDSA-AES128-SHA"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
        ["ECDHE-RSA-AES128-SHA"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
        ["ECDHE-ECDSA-AES256-SHA"] = TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
        ["ECDHE-RSA-AES256-SHA"] = TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
        ["AES128-GCM-SHA256"] = TlsCipherSuite.TLS_RSA_WITH_AES_128_GCM_SHA256,
        ["AES256-GCM-SHA384"] = TlsCipherSuite.TLS_RSA_WITH_AES_256_GCM_SHA384,
        ["AES128-SHA256"] = TlsCipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA256,
        ["AES256-SHA256"] = TlsCipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA256,
        ["AES128-SHA"] = TlsCipherSuite.TLS_RSA_WITH_AES_128_CBC_SHA,
        ["AES256-SHA"] = TlsCipherSuite.TLS_RSA_WITH_AES_256_CBC_SHA,
    };

    /// <summary>The suites of a `ciphers` value, in its order; throws <see cref="ConfigException"/> naming an unknown one.</summary>
    public static IReadOnlyList<TlsCipherSuite> Parse(string value) =>
        TryParse(value, out var suites) is { } problem ? throw new ConfigException($"setting 'ciphers' = \"{value}\": {problem}") : suites;

    /// <summary>What is wrong with a `ciphers` value, or null.</summary>
    public static string? Problem(string value) => value.Length == 0 ? null : TryParse(value, out _);

    private static string? TryParse(string value, out List<TlsCipherSuite> suites)
    {
        suites = [];
        foreach (var name in value.Split([':', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (Find(name) is not { } suite)
                return $"unknown cipher suite \"{name}\" (expected OpenSSL names such as ECDHE-RSA-AES128-GCM-SHA256 or TLS_AES_128_GCM_SHA256, separated by ':')";
            if (!suites.Contains(suite)) suites.Add(suite);
        }
        return suites.Count == 0 ? "no cipher suite named" : null;
    }

    private static TlsCipherSuite? Find(string name) =>
        OpenSsl.TryGetValue(name, out var suite) ? suite
        : name.StartsWith("TLS_", StringComparison.Ordinal) && Enum.TryParse<TlsCipherSuite>(name, ignoreCase: false, out var iana) ? iana
        : null;
}
