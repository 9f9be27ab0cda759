namespace Prefork.Config;

/// <summary>
/// The effective configuration: every setting's value after defaults, the TOML file and the
/// command line. <see cref="Get{T}"/> reads a setting, typed by its declaration in <see cref="Settings"/>;
/// nothing here can be out of range. The few values worked out from settings are named members below.
/// </summary>
public sealed class GatewayConfig
{
    private readonly Dictionary<string, object> _values;

    internal GatewayConfig(Dictionary<string, object> values, string? path)
    {
        _values = values;
        FilePath = path is null ? null : Path.GetFullPath(path); // now: the master may chdir later
    }

    /// <summary>The config file it was read from (full path), or null when only defaults and flags were used.</summary>
    public string? FilePath { get; }

    /// <summary>The folder relative paths in the config are resolved against.</summary>
    public string BaseDirectory => FilePath is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(FilePath)!;

    /// <summary>A setting's value as stored, untyped: for code that walks <see cref="Settings.All"/>.</summary>
    public object this[string key] => _values[key];
    public IEnumerable<KeyValuePair<string, object>> Values => Settings.All.Select(s => new KeyValuePair<string, object>(s.Key, _values[s.Key]));

    /// <summary>A setting's value, typed by its declaration: <c>config.Get(Settings.Workers)</c> is an int.</summary>
    public T Get<T>(Setting<T> setting) => setting.Read(_values[setting.Key]);

    // Values worked out from settings, beyond a read.

    /// <summary>
    /// A setting in seconds (timeout, header_timeout, keepalive, graceful_timeout…) as milliseconds,
    /// the one place that converts them; 0 stays 0, which for most of them means "never".
    /// </summary>
    public int Milliseconds(Setting<int> seconds) => checked(Get(seconds) * 1000);
    /// <summary>True when the workers are a `command` program rather than gateway workers.</summary>
    public bool RunsCommand => Get(Settings.Command).Count > 0;
    /// <summary>`ready = "delay:N"`: N seconds; null for notify.</summary>
    public int? ReadyDelaySeconds => Settings.ReadyDelaySeconds(Get(Settings.Ready));
    /// <summary>Settings set away from their default that do not apply to this config's kind of worker (warned about at start).</summary>
    public IEnumerable<string> InapplicableSettings => Settings.All
        .Where(s => s.Applies == (RunsCommand ? AppliesTo.Gateway : AppliesTo.Command) && ConfigLoader.FormatToml(_values[s.Key]) != s.DefaultAsToml)
        .Select(s => s.Key);
    /// <summary>limit_request_line in force: 0 means 8190.</summary>
    public int LimitRequestLine => Get(Settings.LimitRequestLine) is var v && v == 0 ? 8190 : v;
    /// <summary>limit_request_fields in force: 0 means 32768.</summary>
    public int LimitRequestFields => Get(Settings.LimitRequestFields) is var v && v == 0 ? 32768 : v;
    /// <summary>limit_request_field_size in force: 0 means 65536.</summary>
    public int LimitRequestFieldSize => Get(Settings.LimitRequestFieldSize) is var v && v == 0 ? 65536 : v;
    /// <summary>worker_tmp_dir as a full path (relative to the config file); $TMPDIR or /tmp when empty.</summary>
    public string WorkerTmpDir => Get(Settings.WorkerTmpDir) is { Length: > 0 } dir ? Path.GetFullPath(dir, BaseDirectory) : Path.GetTempPath();
    /// <summary>secure_scheme_headers as (header, value meaning https) pairs.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> SecureSchemeHeaders => Get(Settings.SecureSchemeHeaders).Select(ParseHeaderPair).ToArray();
    /// <summary>certfile as a full path (relative to the config file); null when TLS is off.</summary>
    public string? CertFile => FullPath(Settings.CertFile);
    /// <summary>keyfile as a full path; null when the key is in certfile.</summary>
    public string? KeyFile => FullPath(Settings.KeyFile);
    /// <summary>keyfile_password, else $PREFORK_KEYFILE_PASSWORD; null when neither is set.</summary>
    public string? KeyFilePassword => Get(Settings.KeyFilePassword) is { Length: > 0 } p ? p : Environment.GetEnvironmentVariable(ConfigHandOff.EnvKeyFilePassword) is { Length: > 0 } e ? e : null;
    public string? CaCerts => FullPath(Settings.CaCerts);
    /// <summary>ciphers as .NET's suites (empty: Prefork's default list).</summary>
    public IReadOnlyList<System.Net.Security.TlsCipherSuite> Ciphers => CipherNames.Parse(Get(Settings.Ciphers) is { Length: > 0 } c ? c : Settings.DefaultCiphers);
    private string? FullPath(Setting<string> setting) => Get(setting) is { Length: > 0 } p ? Path.GetFullPath(p, BaseDirectory) : null;

    /// <summary>"X-Forwarded-Proto=https" → (X-Forwarded-Proto, https); the loader has checked the form.</summary>
    internal static KeyValuePair<string, string> ParseHeaderPair(string pair)
    {
        int equals = pair.IndexOf('=');
        return new(pair[..equals].Trim(), pair[(equals + 1)..].Trim());
    }

    /// <summary>What the master hands each worker (see <see cref="ConfigHandOff"/>), written once per config, so once per generation.</summary>
    public string HandOff => _handOff ??= ConfigHandOff.Write(this);
    private string? _handOff;

    /// <summary>The effective configuration as TOML, every key, for --print-config.</summary>
    public string ToToml()
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine("# Effective Prefork configuration" + (FilePath is null ? "" : $" (from {FilePath})"));
        var idle = RunsCommand ? AppliesTo.Gateway : AppliesTo.Command;
        foreach (var s in Settings.All)
            sb.Append(s.Key).Append(" = ").Append(ConfigLoader.FormatToml(_values[s.Key]))
              .AppendLine(s.Applies != idle ? "" : RunsCommand ? "  # does not apply: command is set" : "  # applies to command workers only");
        return sb.ToString();
    }
}
