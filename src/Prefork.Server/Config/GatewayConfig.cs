namespace Prefork.Config;

/// <summary>
/// The effective configuration: every setting's value after defaults, the TOML file and the
/// command line. Typed properties read the validated values; nothing here can be out of range.
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

    public object this[string key] => _values[key];
    public IEnumerable<KeyValuePair<string, object>> Values => Settings.All.Select(s => new KeyValuePair<string, object>(s.Key, _values[s.Key]));

    private int Int(string key) => checked((int)(long)_values[key]);
    private string Str(string key) => (string)_values[key];

    public IReadOnlyList<string> Bind => (string[])_values["bind"];
    public int Backlog => Int("backlog");
    public string UnixSocketMode => Str("unix_socket_mode");
    public int Workers => Int("workers");
    public string WorkerClass => Str("worker_class");
    public int Threads => Int("threads");
    public int WorkerConnections => Int("worker_connections");
    public string App => Str("app");
    public IReadOnlyList<string> AppPath => (string[])_values["app_path"];
    public int Timeout => Int("timeout");
    public int GracefulTimeout => Int("graceful_timeout");
    public int Keepalive => Int("keepalive");
    public int HeaderTimeout => Int("header_timeout");
    public int WorkerBootTimeout => Int("worker_boot_timeout");
    /// <summary>The command workers' program and arguments; empty for gateway workers.</summary>
    public IReadOnlyList<string> Command => (string[])_values["command"];
    public bool RunsCommand => Command.Count > 0;
    /// <summary>`ready = "delay:N"`: N seconds; null for notify.</summary>
    public int? ReadyDelaySeconds => Settings.ReadyDelaySeconds(Str("ready"));
    public string StopSignal => Str("stop_signal");
    public string ReadyMode => Str("ready");
    /// <summary>Settings set away from their default that do not apply to this config's kind of worker (warned about at start).</summary>
    public IEnumerable<string> InapplicableSettings => Settings.All
        .Where(s => s.Applies == (RunsCommand ? AppliesTo.Gateway : AppliesTo.Command) && ConfigLoader.FormatToml(_values[s.Key]) != s.DefaultAsToml)
        .Select(s => s.Key);
    public IReadOnlyList<string> ListenFdNames => (string[])_values["listen_fdnames"];
    public long MaxRequests => (long)_values["max_requests"];
    public long MaxRequestsJitter => (long)_values["max_requests_jitter"];
    public long MaxWorkerMemoryMiB => (long)_values["max_worker_memory"];
    public long MaxWorkerAge => (long)_values["max_worker_age"];
    public int LimitRequestLine => Int("limit_request_line") is var v && v == 0 ? 8190 : v;
    public int LimitRequestFields => Int("limit_request_fields") is var v && v == 0 ? 32768 : v;
    public int LimitRequestFieldSize => Int("limit_request_field_size") is var v && v == 0 ? 65536 : v;
    public long LimitRequestBody => (long)_values["limit_request_body"];
    /// <summary>worker_tmp_dir as a full path (relative to the config file); $TMPDIR or /tmp when empty.</summary>
    public string WorkerTmpDir => Str("worker_tmp_dir") is { Length: > 0 } dir ? Path.GetFullPath(dir, BaseDirectory) : Path.GetTempPath();
    public string PidFile => Str("pidfile");
    public string ProcName => Str("proc_name");
    public string User => Str("user");
    public string Group => Str("group");
    public string Umask => Str("umask");
    public string Chdir => Str("chdir");
    public IReadOnlyList<string> RawEnv => (string[])_values["raw_env"];
    /// <summary>The shell command for a hook (on_starting, when_ready…), or "" when none.</summary>
    public string Hook(string name) => Str(name);
    public string LogLevel => Str("loglevel");
    public string ErrorLog => Str("errorlog");
    public string AccessLog => Str("accesslog");
    public string AccessLogFormat => Str("access_log_format");
    public IReadOnlyList<string> ForwardedAllowIps => (string[])_values["forwarded_allow_ips"];
    /// <summary>secure_scheme_headers as (header, value meaning https) pairs.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> SecureSchemeHeaders =>
        ((string[])_values["secure_scheme_headers"]).Select(ParseHeaderPair).ToArray();
    public bool ProxyProtocol => (bool)_values["proxy_protocol"];
    public IReadOnlyList<string> ProxyAllowIps => (string[])_values["proxy_allow_ips"];
    /// <summary>certfile as a full path (relative to the config file); null when TLS is off.</summary>
    public string? CertFile => FullPath("certfile");
    /// <summary>keyfile as a full path; null when the key is in certfile.</summary>
    public string? KeyFile => FullPath("keyfile");
    /// <summary>keyfile_password, else $PREFORK_KEYFILE_PASSWORD; null when neither is set.</summary>
    public string? KeyFilePassword => Str("keyfile_password") is { Length: > 0 } p ? p : Environment.GetEnvironmentVariable("PREFORK_KEYFILE_PASSWORD") is { Length: > 0 } e ? e : null;
    public string? CaCerts => FullPath("ca_certs");
    public string CertReqs => Str("cert_reqs");
    /// <summary>ciphers as .NET's suites (empty: Prefork's default list).</summary>
    public IReadOnlyList<System.Net.Security.TlsCipherSuite> Ciphers => CipherNames.Parse(Str("ciphers") is { Length: > 0 } c ? c : Settings.DefaultCiphers);
    public IReadOnlyList<string> TlsProtocols => (string[])_values["tls_protocols"];
    public bool DoHandshakeOnConnect => (bool)_values["do_handshake_on_connect"];
    private string? FullPath(string key) => Str(key) is { Length: > 0 } p ? Path.GetFullPath(p, BaseDirectory) : null;

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
