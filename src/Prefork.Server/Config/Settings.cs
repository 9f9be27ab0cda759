using StringList = System.Collections.Generic.IReadOnlyList<string>;

namespace Prefork.Config;

/// <summary>
/// Every Prefork setting, declared once, typed by what a config hands out: <c>config.Get(Settings.Workers)</c> is an int.
/// Keep sections in the order the README shows them.
/// </summary>
public static class Settings
{
    // Apache's combined format (Gunicorn's default) with the worker pid appended.
    public const string DefaultAccessLogFormat = "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\" %(p)s";

    // Mozilla's "intermediate" TLS configuration, without its DHE suites (no dhparam to configure).
    public const string DefaultCiphers = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:" +
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

    // The forms some string settings take (see ValueForm); the loader checks every value against its setting's.
    private static readonly ValueForm ListenAddressForm = new("HOST:PORT, [ADDR]:PORT, unix:/path or fd://N", v =>
    {
        try { ListenAddress.Parse(v); return null; }
        catch (FormatException e) { return e.Message; }
    });
    private static readonly ValueForm OctalModeForm = ValueForm.Of("an octal file mode such as \"0660\"", IsOctalMode);
    private static readonly ValueForm OptionalOctalModeForm = ValueForm.Of("an octal file mode such as \"0027\", or \"\"", v => v.Length == 0 || IsOctalMode(v));
    private static readonly ValueForm EnvPairForm = ValueForm.Of("\"KEY=value\" strings", v => v.IndexOf('=') > 0);
    private static readonly ValueForm NonEmptyForm = ValueForm.Of("non-empty strings", v => v.Length > 0);
    private static readonly ValueForm ReadyForm = ValueForm.Of("\"notify\" or \"delay:SECONDS\" (1 to 3600)", v => v == "notify" || ReadyDelaySeconds(v) is not null);
    private static readonly ValueForm FdNameForm = ValueForm.Of("names of 1 to 255 printable ASCII characters without ':'", IsFdName);
    private static readonly ValueForm PeerForm = ValueForm.Of(
        "IP addresses (\"10.0.0.7\", \"::1\"), CIDR blocks (\"10.0.0.0/8\", \"fd00::/8\") or \"*\"", IpAllowList.IsValidEntry);
    private static readonly ValueForm MetricsBindForm = ValueForm.Of("HOST:PORT or [ADDR]:PORT, or \"\"", v =>
    {
        if (v.Length == 0) return true;
        try { return ListenAddress.Parse(v) is { IsUnix: false, InheritedFd: null }; }
        catch (FormatException) { return false; }
    });
    private static readonly ValueForm CiphersForm = new("OpenSSL cipher suite names separated by ':'", CipherNames.Problem);
    private static readonly ValueForm TlsProtocolForm = ValueForm.Of("\"TLSv1.2\" or \"TLSv1.3\"", v => v is "TLSv1.2" or "TLSv1.3");
    private static readonly ValueForm HeaderPairForm = ValueForm.Of(
        "\"HEADER=value\" pairs such as \"X-FORWARDED-PROTO=https\" (a header name, '=', a non-empty value)", IsHeaderPair);

    // Server socket
    public static readonly Setting<StringList> Bind = new("bind", ["127.0.0.1:8000"], "socket",
        "Addresses to listen on: HOST:PORT (IPv4), [ADDR]:PORT (IPv6), unix:/path, or fd://N (an inherited descriptor). Repeat -b for several.",
        ShortFlag: "-b", Form: ListenAddressForm);
    public static readonly Setting<int> Backlog = new("backlog", 2048, "socket", "Pending connections the kernel queues per listener (listen(2) backlog).", Min: 1, Max: 65535, Reloadable: false);
    public static readonly Setting<string> UnixSocketMode = new("unix_socket_mode", "0660", "socket", "File mode (octal) of unix: sockets created by bind.", Form: OctalModeForm, Reloadable: false);

    // Workers
    public static readonly Setting<int> Workers = new("workers", 1, "worker", "Number of worker processes. A usual start is 2 x cores + 1 for sync, one per core for threads/epoll.", ShortFlag: "-w", Min: 1, Max: 1024);
    public static readonly Setting<string> WorkerClass = new("worker_class", "threads", "worker",
        "Concurrency model of each worker: sync (one connection at a time, blocking), threads (a pool of `threads` blocking threads; idle keep-alive connections wait in a poller, not on a thread), epoll (one thread, a non-blocking event loop; asynchronous bodies run on the loop; the worker's other threads run SCHED_BATCH, so that waking they do not preempt the loop). With sync and threads > 1, threads is used (as Gunicorn switches to gthread).",
        ShortFlag: "-k", Choices: ["sync", "threads", "epoll"], Applies: AppliesTo.Gateway);
    public static readonly Setting<int> Threads = new("threads", 1, "worker", "Threads serving requests in each worker of the threads class (each runs one request at a time). More than 1 with worker_class sync selects threads.", Min: 1, Max: 4096, Applies: AppliesTo.Gateway);
    public static readonly Setting<int> WorkerConnections = new("worker_connections", 1000, "worker", "Most connections one threads or epoll worker holds open; beyond it the worker stops accepting (others may) and answers with Connection: close.", Min: 1, Max: 1000000, Applies: AppliesTo.Gateway);
    public static readonly Setting<string> App = new("app", "Prefork.SampleApp:Prefork.SampleApp.SampleApplication", "worker",
        "The application, ASSEMBLY:TYPE. ASSEMBLY is a path to a .dll (relative to the config file) or an assembly name looked up in app_path, the config file's folder and prefork's own folder; TYPE implements IGatewayApplication or IAsyncGatewayApplication.",
        ShortFlag: "-a", Applies: AppliesTo.Gateway);
    public static readonly Setting<StringList> AppPath = new("app_path", [], "worker", "Extra folders to search for the application's assembly (like Gunicorn's --pythonpath).", Applies: AppliesTo.Gateway);
    public static readonly Setting<int> Timeout = new("timeout", 30, "worker", "Seconds a worker may spend on one request, or stay silent, before the master kills and replaces it. 0 disables.", Min: 0, Max: 86400);
    public static readonly Setting<int> GracefulTimeout = new("graceful_timeout", 30, "worker", "Seconds workers get to finish in-flight requests on TERM or reload before they are killed.", Min: 0, Max: 86400);
    public static readonly Setting<int> Keepalive = new("keepalive", 2, "worker", "Seconds an idle keep-alive connection is held open waiting for its next request. 0 closes after every response.", Min: 0, Max: 3600, Applies: AppliesTo.Gateway);
    public static readonly Setting<int> HeaderTimeout = new("header_timeout", 10, "worker", "Seconds a client has to send a whole request head, from its first byte (and for the first request, from the connection); a slower one gets 408 and is closed. 0 disables.", Min: 0, Max: 3600, Applies: AppliesTo.Gateway);
    public static readonly Setting<int> WorkerBootTimeout = new("worker_boot_timeout", 60, "worker", "Seconds a new worker may take to load the application and report ready.", Min: 1, Max: 3600);

    // Command workers: any program that takes its sockets the systemd way runs as the workers instead of the gateway engine.
    public static readonly Setting<StringList> Command = new("command", [], "command",
        "Run this program as each worker instead of the gateway engine: [PROGRAM, ARG…], or `prefork [OPTIONS] -- PROGRAM ARG…`. It runs in the config file's folder (or chdir), gets the listening sockets at fd 3, 4, … with LISTEN_FDS, LISTEN_PID (its own pid) and LISTEN_FDNAMES, and NOTIFY_SOCKET for sd_notify (READY=1, WATCHDOG=1, STATUS=). Its stdout and stderr go to the error log, line by line. With a command, the gateway-only settings (app, worker_class, threads, limits, access log, proxy…) do not apply.",
        Form: NonEmptyForm);
    public static readonly Setting<string> Ready = new("ready", "notify", "command",
        "When a command worker counts as ready (and the one it replaces may retire): notify (it sends READY=1 on NOTIFY_SOCKET), or delay:SECONDS (that long after it started, for programs that cannot notify: a guess, so a slow start can take traffic before it serves).",
        Form: ReadyForm, Applies: AppliesTo.Command);
    public static readonly Setting<string> StopSignal = new("stop_signal", "TERM", "command",
        "Signal that asks a command worker to stop gracefully (retirement, reload, TERM to the master); KILL follows after graceful_timeout. einhorn's workers expect USR2.",
        Choices: ["TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "WINCH"], Applies: AppliesTo.Command);
    public static readonly Setting<StringList> ListenFdNames = new("listen_fdnames", [], "command",
        "Names for the sockets in LISTEN_FDNAMES, one per bind in order (systemd's FileDescriptorName=). A socket without one is named after its bind address, ':' made '_'.",
        Form: FdNameForm, Applies: AppliesTo.Command);

    // Recycling: a worker past one of these is replaced first, then retired, so capacity never dips.
    public static readonly Setting<long> MaxRequests = new("max_requests", 0, "recycling", "Recycle a worker after this many requests (guards against leaks). 0 disables.", Min: 0);
    public static readonly Setting<long> MaxRequestsJitter = new("max_requests_jitter", 0, "recycling", "Add a random 0..N to each worker's max_requests, so workers do not all recycle at once.", Min: 0);
    public static readonly Setting<long> MaxWorkerMemoryMiB = new("max_worker_memory", 0, "recycling", "Recycle a worker whose resident memory (RSS) exceeds this many MiB. 0 disables.", Min: 0);
    public static readonly Setting<long> MaxWorkerAge = new("max_worker_age", 0, "recycling", "Recycle a worker after this many seconds. 0 disables.", Min: 0);

    // Limits (Gunicorn's defaults). Read the first three as config.LimitRequestLine, …Fields, …FieldSize: the limit in force, 0 made its largest.
    public static readonly Setting<int> LimitRequestLine = new("limit_request_line", 8190, "limits", "Longest request line in bytes; longer gets 414 (RFC 9112 §3 recommends at least 8000). 0 means 8190.", Min: 0, Max: 8190, Applies: AppliesTo.Gateway);
    public static readonly Setting<int> LimitRequestFields = new("limit_request_fields", 100, "limits", "Most header fields in a request; more gets 431. 0 means 32768.", Min: 0, Max: 32768, Applies: AppliesTo.Gateway);
    public static readonly Setting<int> LimitRequestFieldSize = new("limit_request_field_size", 8190, "limits", "Longest header field line in bytes, counting name, colon, value and the CRLF (as Gunicorn counts); longer gets 431. 0 means 65536.", Min: 0, Max: 65536, Applies: AppliesTo.Gateway);
    public static readonly Setting<long> LimitRequestBody = new("limit_request_body", 104857600, "limits", "Largest request body in bytes; larger gets 413. The body is read before the app is called: up to 64 KiB in memory, the rest into a file in worker_tmp_dir.", Min: 0, Applies: AppliesTo.Gateway);
    public static readonly Setting<string> WorkerTmpDir = new("worker_tmp_dir", "", "limits",
        "Directory for request bodies over 64 KiB while they are read (unnamed files, gone when the request ends or the worker dies). Disk use is bounded by worker_connections x limit_request_body per worker. Empty: $TMPDIR, or /tmp. If it is unusable, such requests get 500 (logged); the worker goes on serving.", Applies: AppliesTo.Gateway);

    // Process
    public static readonly Setting<string> PidFile = new("pidfile", "", "process", "File the master writes its pid to (atomically); removed on exit. Empty: none.", Reloadable: false);
    public static readonly Setting<string> ProcName = new("proc_name", "prefork", "process", "Process name shown by ps/top: the master is PROC_NAME, workers PROC_NAME-wN (15 bytes at most, a kernel limit).", Reloadable: false);
    public static readonly Setting<string> User = new("user", "", "process", "Run workers as this user (name or uid); the master keeps its own (e.g. root, to bind port 80). Empty: unchanged.");
    public static readonly Setting<string> Group = new("group", "", "process", "Run workers with this group (name or gid). Empty: the user's primary group, or unchanged.");
    public static readonly Setting<string> Umask = new("umask", "", "process", "File mode mask (octal, e.g. \"0027\") for the master and workers. Empty: inherited.", Form: OptionalOctalModeForm, Reloadable: false);
    public static readonly Setting<string> Chdir = new("chdir", "", "process", "Directory the master changes to before loading anything (relative paths in the config stay relative to the config file).", Reloadable: false);
    public static readonly Setting<StringList> RawEnv = new("raw_env", [], "process", "Extra environment for workers, as \"KEY=value\" strings.", Form: EnvPairForm);

    // Hooks: shell commands the master runs (/bin/sh -c) with PREFORK_HOOK and the event's details in the environment.
    public static readonly Setting<string> OnStarting = new("on_starting", "", "hooks", "Run before the master binds; waited for (30 s at most).");
    public static readonly Setting<string> WhenReady = new("when_ready", "", "hooks", "Run when the first generation of workers is all booted.");
    public static readonly Setting<string> OnReload = new("on_reload", "", "hooks", "Run on HUP after the new config is accepted.");
    public static readonly Setting<string> WorkerBoot = new("worker_boot", "", "hooks", "Run when a worker reports ready (PREFORK_WORKER_PID, PREFORK_WORKER_INDEX, PREFORK_GENERATION).");
    public static readonly Setting<string> WorkerExit = new("worker_exit", "", "hooks", "Run when a worker has exited (also PREFORK_EXIT_CODE or PREFORK_EXIT_SIGNAL).");
    public static readonly Setting<string> OnExit = new("on_exit", "", "hooks", "Run just before the master exits, after every other hook has finished; waited for (10 s at most).");

    // Logging
    public static readonly Setting<string> LogLevel = new("loglevel", "info", "logging", "Error log verbosity.", Flag: "--log-level", Choices: ["debug", "info", "warning", "error", "critical"]);
    public static readonly Setting<string> ErrorLog = new("errorlog", "-", "logging", "Error log: \"-\" for stderr, or a file path (reopened on USR1).");
    public static readonly Setting<string> AccessLog = new("accesslog", "", "logging", "Access log: empty for none, \"-\" for stdout, or a file path.", Applies: AppliesTo.Gateway);
    public static readonly Setting<string> AccessLogFormat = new("access_log_format", DefaultAccessLogFormat, "logging",
        "Access log line, Gunicorn's atoms: h remote address, l '-', u user, t time, r request line, m method, U path, q query, H protocol, s status, b/B bytes, f referer, a user agent, T/M/D duration in s/ms/us, p pid.", Applies: AppliesTo.Gateway);

    // Operating: `prefork ctl` and Prometheus
    public static readonly Setting<string> ControlSocket = new("control_socket", "prefork.ctl", "operating",
        "Unix socket that `prefork ctl` talks to (JSON, one line each way), mode 0600: only the master's user and root may use it. A relative path lies beside the pidfile when one is set, else in the config file's folder (the working directory without a config file). Empty disables.",
        Reloadable: false);
    public static readonly Setting<string> MetricsBind = new("metrics_bind", "", "operating",
        "HOST:PORT of the master's own HTTP listener (never the application's) for Prometheus: GET /metrics, /ready (200 when the current generation serves at full strength, else 503) and /live. Empty disables.",
        Form: MetricsBindForm, Reloadable: false);
    public static readonly Setting<string> StatsdHost = new("statsd_host", "", "operating",
        "HOST:PORT of a statsd server: once a second the master sends PREFIX.requests (counter), PREFIX.workers and PREFIX.workers.STATE (gauges), PREFIX.worker_exits.REASON and PREFIX.reloads (counters), over UDP. Empty disables.",
        Form: MetricsBindForm, Reloadable: false);
    public static readonly Setting<string> StatsdPrefix = new("statsd_prefix", "prefork", "operating",
        "First part of every statsd name; \"gunicorn\" gives Gunicorn's names (gunicorn.requests, gunicorn.workers).", Reloadable: false);
    public static readonly Setting<bool> Reload = new("reload", false, "operating",
        "For development (Gunicorn's --reload): when the app's assembly (for command workers, the program's file) or one of reload_extra_files changes and then stays still for a second, reload as on HUP: a new generation, each old worker retired once its replacement is ready.");
    public static readonly Setting<StringList> ReloadExtraFiles = new("reload_extra_files", [], "operating",
        "More files whose change triggers a reload when reload is on (paths relative to the config file).");

    // Proxies in front of Prefork (load balancers, TLS terminators)
    public static readonly Setting<StringList> ForwardedAllowIps = new("forwarded_allow_ips", ["127.0.0.1", "::1"], "proxy",
        "Peers trusted to set X-Forwarded-For, Forwarded and the secure_scheme_headers: IP addresses, CIDR blocks such as \"10.0.0.0/8\", or \"*\" for any peer. Unix-socket peers are always trusted. Only then do REMOTE_ADDR and the URL scheme follow those headers; from other peers the headers reach the app but change nothing.",
        Form: PeerForm, Applies: AppliesTo.Gateway);
    public static readonly Setting<StringList> SecureSchemeHeaders = new("secure_scheme_headers", ["X-FORWARDED-PROTOCOL=ssl", "X-FORWARDED-PROTO=https", "X-FORWARDED-SSL=on"], "proxy",
        "\"HEADER=value\" pairs by which a trusted proxy says the client used https (another value of the header means http). Headers that contradict each other, or Forwarded's proto, get 400. [] ignores them all.",
        Form: HeaderPairForm, Applies: AppliesTo.Gateway);
    public static readonly Setting<bool> ProxyProtocol = new("proxy_protocol", false, "proxy",
        "Every connection starts with a PROXY protocol header (v1 text or v2 binary, as HAProxy and AWS NLB send); REMOTE_ADDR and REMOTE_PORT come from it. A connection without one gets 400.", Applies: AppliesTo.Gateway);
    public static readonly Setting<StringList> ProxyAllowIps = new("proxy_allow_ips", ["127.0.0.1", "::1"], "proxy",
        "Peers allowed to send a PROXY protocol header: IP addresses, CIDR blocks, or \"*\". Unix-socket peers are always allowed. Others get 403 when proxy_protocol is on.",
        Form: PeerForm, Applies: AppliesTo.Gateway);

    /// <summary>
    /// Every setting, in the order of the declarations above: the order --help, the manual and the README show
    /// them (a test checks that none is missing or out of order).
    /// </summary>
    // TLS (Gunicorn's names): with certfile set, every TCP listener speaks HTTPS; unix sockets stay plain.
    public static readonly Setting<string> CertFile = new("certfile", "", "ssl",
        "PEM certificate chain (the server's certificate first, then intermediates). Set: every TCP listener serves HTTPS and gateway.url_scheme is https. Loaded by each new worker, so HUP after a renewal serves the new one. Empty: plain HTTP.",
        Applies: AppliesTo.Gateway);
    public static readonly Setting<string> KeyFile = new("keyfile", "", "ssl", "PEM private key of certfile (PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8 with keyfile_password). Empty: the key is in certfile.", Applies: AppliesTo.Gateway);
    public static readonly Setting<string> KeyFilePassword = new("keyfile_password", "", "ssl", "Password of an encrypted keyfile. Empty: $PREFORK_KEYFILE_PASSWORD, if set (keeps it out of the config file).", Applies: AppliesTo.Gateway);
    public static readonly Setting<string> CaCerts = new("ca_certs", "", "ssl", "PEM file of the CAs client certificates must chain to (needed by cert_reqs optional and required).", Applies: AppliesTo.Gateway);
    public static readonly Setting<string> CertReqs = new("cert_reqs", "none", "ssl",
        "Client certificates: none (not asked for), optional (asked for; one that does not chain to ca_certs fails the handshake), required (a client without a valid one fails the handshake). The app sees SSL_CLIENT_VERIFY (SUCCESS or NONE), SSL_CLIENT_S_DN and SSL_CLIENT_CERT (PEM).",
        Choices: ["none", "optional", "required"], Applies: AppliesTo.Gateway);
    public static readonly Setting<string> Ciphers = new("ciphers", "", "ssl",
        "Cipher suites, OpenSSL names separated by ':' (ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256); IANA names also work. List TLS 1.3 suites too when TLS 1.3 is on. OpenSSL keywords (HIGH, !aNULL) are not supported. Empty: Mozilla's \"intermediate\" list without DHE (forward secrecy, AEAD only: no CBC, so no LUCKY13).",
        Form: CiphersForm, Applies: AppliesTo.Gateway);
    public static readonly Setting<StringList> TlsProtocols = new("tls_protocols", ["TLSv1.2", "TLSv1.3"], "ssl", "TLS versions accepted; nothing older than TLS 1.2 is.", Form: TlsProtocolForm, Applies: AppliesTo.Gateway);
    public static readonly Setting<bool> DoHandshakeOnConnect = new("do_handshake_on_connect", false, "ssl",
        "Gunicorn's setting, accepted for compatibility: Prefork always runs the handshake as the client's bytes arrive, without blocking a worker, so both values behave the same.",
        Applies: AppliesTo.Gateway);

    public static readonly IReadOnlyList<Setting> All =
    [
        Bind, Backlog, UnixSocketMode,
        Workers, WorkerClass, Threads, WorkerConnections, App, AppPath, Timeout, GracefulTimeout, Keepalive, HeaderTimeout, WorkerBootTimeout,
        Command, Ready, StopSignal, ListenFdNames,
        MaxRequests, MaxRequestsJitter, MaxWorkerMemoryMiB, MaxWorkerAge,
        LimitRequestLine, LimitRequestFields, LimitRequestFieldSize, LimitRequestBody, WorkerTmpDir,
        PidFile, ProcName, User, Group, Umask, Chdir, RawEnv,
        OnStarting, WhenReady, OnReload, WorkerBoot, WorkerExit, OnExit,
        LogLevel, ErrorLog, AccessLog, AccessLogFormat,
        ControlSocket, MetricsBind, StatsdHost, StatsdPrefix, Reload, ReloadExtraFiles,
        ForwardedAllowIps, SecureSchemeHeaders, ProxyProtocol, ProxyAllowIps,
        CertFile, KeyFile, KeyFilePassword, CaCerts, CertReqs, Ciphers, TlsProtocols, DoHandshakeOnConnect,
    ];

    private static readonly Dictionary<string, Setting> ByKey = All.ToDictionary(s => s.Key);

    public static Setting? Find(string key) => ByKey.GetValueOrDefault(key);

    /// <summary>The long CLI flag of a setting: its own, or --key-with-dashes.</summary>
    public static string LongFlag(Setting s) => s.Flag ?? "--" + s.Key.Replace('_', '-');

    /// <summary>The N of `ready = "delay:N"`, or null for any other value.</summary>
    public static int? ReadyDelaySeconds(string ready) =>
        ready.StartsWith("delay:", StringComparison.Ordinal) && int.TryParse(ready.AsSpan(6), System.Globalization.NumberStyles.None, null, out var n) && n is >= 1 and <= 3600 ? n : null;

    /// <summary>What systemd accepts as a file descriptor name (fdname_is_valid).</summary>
    public static bool IsFdName(string name) => name.Length is >= 1 and <= 255 && name.All(c => c is > ' ' and < '\x7f' && c != ':');

    private static bool IsOctalMode(string s) => s.Length is >= 3 and <= 4 && s.All(c => c is >= '0' and <= '7');

    private static bool IsHeaderPair(string pair)
    {
        int equals = pair.IndexOf('=');
        if (equals <= 0) return false;
        var name = pair.AsSpan(0, equals).Trim();
        var value = pair.AsSpan(equals + 1).Trim();
        if (name.IsEmpty || value.IsEmpty) return false;
        foreach (var c in name)
            if (!char.IsAsciiLetterOrDigit(c) && "!#$%&'*+-.^_`|~".IndexOf(c) < 0) return false;
        foreach (var c in value)
            if (c < 0x20 || c == 0x7f) return false;
        return true;
    }
}
