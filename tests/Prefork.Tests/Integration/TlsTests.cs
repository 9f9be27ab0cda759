using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// HTTPS in every worker class, spoken to by real clients (curl, openssl s_client, wrk) with
/// certificates from a CA made for the test.
/// </summary>
[LongClass]
public sealed class TlsTests : IDisposable
{
    public static TheoryData<string> Classes => new(Settings.Find("worker_class")!.Choices!);

    private readonly TestCertificates _certs = new();

    public void Dispose() => _certs.Dispose();

    private PreforkServer StartTls(string workerClass, string extra = "", int workers = 1, bool waitReady = true)
    {
        var (cert, key) = _certs.Issue("server");
        return PreforkServer.Start($"""
            worker_class = "{workerClass}"
            threads = 4
            certfile = "{cert}"
            keyfile = "{key}"
            loglevel = "debug"
            {extra}
            """, workers: workers, waitReady: waitReady);
    }

    private (int ExitCode, string Output) Curl(PreforkServer server, string path, params string[] extra) =>
        Repo.Run("curl", ["-sS", "--max-time", "20", "--cacert", _certs.CaFile, .. extra, $"https://localhost:{server.Port}{path}"]);

    private static (int ExitCode, string Output) OpenSsl(PreforkServer server, params string[] args) =>
        Repo.Run("sh", ["-c", $"echo | openssl s_client -connect 127.0.0.1:{server.Port} {string.Join(' ', args)} 2>&1"], timeout: TimeSpan.FromSeconds(30));

    [Theory, MemberData(nameof(Classes))]
    public void Curl_and_openssl_get_https_with_TLS_1_2_and_1_3_and_nothing_older(string workerClass)
    {
        using var server = StartTls(workerClass);
        server.AssertLogged($"Listening at: https://127.0.0.1:{server.Port}");
        var env = Curl(server, "/env");
        Assert.True(env.ExitCode == 0, env.Output);
        Assert.Contains("gateway.url_scheme=https", env.Output);
        Assert.Contains("SSL_CLIENT_VERIFY=NONE", env.Output);
        Assert.DoesNotContain("SSL_CLIENT_CERT", env.Output);

        // Keep-alive: three requests on one connection (curl reuses it), ALPN agreed on http/1.1.
        var three = Curl(server, "/", "-v", "-o", "/dev/null", $"https://localhost:{server.Port}/pid", $"https://localhost:{server.Port}/");
        Assert.True(three.ExitCode == 0, three.Output);
        Assert.Contains("ALPN: server accepted http/1.1", three.Output);
        Assert.Contains("Re-using existing", three.Output);

        foreach (var version in new[] { "1_2", "1_3" })
        {
            var hello = OpenSsl(server, $"-tls{version}", "-CAfile", _certs.CaFile, "-servername", "localhost");
            Assert.Contains("Verify return code: 0 (ok)", hello.Output);
            Assert.Contains($"TLSv{version.Replace('_', '.')}", hello.Output);
        }
        var old = OpenSsl(server, "-tls1_1");
        Assert.Contains("Cipher is (NONE)", old.Output); // refused: alert protocol version
        Assert.Equal("200", Curl(server, "/", "-o", "/dev/null", "-w", "%{http_code}").Output);
    }

    [Theory, MemberData(nameof(Classes))]
    public void Client_certificates_required_optional_and_wrong(string workerClass)
    {
        var (aliceCert, aliceKey) = _certs.Issue("alice", "CN=alice, O=Test", client: true);
        var (strangerCert, strangerKey) = _certs.Issue("stranger", "CN=mallory", client: true, selfSigned: true);

        using (var server = StartTls(workerClass, $"cert_reqs = \"required\"\nca_certs = \"{_certs.CaFile}\""))
        {
            int worker = server.WorkerPids().Single();
            var alice = Curl(server, "/env", "--cert", aliceCert, "--key", aliceKey);
            Assert.True(alice.ExitCode == 0, alice.Output);
            Assert.Contains("SSL_CLIENT_VERIFY=SUCCESS", alice.Output);
            Assert.Contains("SSL_CLIENT_S_DN=", alice.Output);
            Assert.Contains("CN=alice", alice.Output);
            Assert.Contains("SSL_CLIENT_CERT=-----BEGIN CERTIFICATE-----", alice.Output);
            Assert.NotEqual(0, Curl(server, "/env").ExitCode);                                           // none
            Assert.NotEqual(0, Curl(server, "/env", "--cert", strangerCert, "--key", strangerKey).ExitCode); // not from ca_certs
            server.WaitForLog("TLS handshake with 127.0.0.1 failed", TimeSpan.FromSeconds(10), occurrences: 2);
            Assert.Equal(0, Curl(server, "/", "--cert", aliceCert, "--key", aliceKey).ExitCode);
            Assert.Equal(worker, server.WorkerPids().Single());
        }
        using (var server = StartTls(workerClass, $"cert_reqs = \"optional\"\nca_certs = \"{_certs.CaFile}\""))
        {
            var anonymous = Curl(server, "/env");
            Assert.True(anonymous.ExitCode == 0, anonymous.Output);
            Assert.Contains("SSL_CLIENT_VERIFY=NONE", anonymous.Output);
            Assert.Contains("SSL_CLIENT_VERIFY=SUCCESS", Curl(server, "/env", "--cert", aliceCert, "--key", aliceKey).Output);
            Assert.NotEqual(0, Curl(server, "/env", "--cert", strangerCert, "--key", strangerKey).ExitCode);
        }
    }

    [Theory, MemberData(nameof(Classes))]
    public void Plain_http_or_garbage_on_the_TLS_port_costs_a_connection_never_the_worker(string workerClass)
    {
        using var server = StartTls(workerClass, "header_timeout = 2");
        int worker = server.WorkerPids().Single();
        var plain = Repo.Run("curl", ["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", $"http://127.0.0.1:{server.Port}/"]);
        Assert.NotEqual("200", plain.Output.Trim());
        Assert.DoesNotContain("timed out", plain.Output); // closed at once, not left hanging
        using (var silent = RawHttp.Connect(server.Port)) // says nothing at all: header_timeout ends it
        {
            silent.ReceiveTimeout = 15_000;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            try { Assert.Equal(0, silent.Receive(new byte[16])); }
            catch (System.Net.Sockets.SocketException) { } // reset: closed too
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(12), $"closed after {sw.Elapsed}");
        }
        Assert.Equal(0, Curl(server, "/").ExitCode);
        Assert.Equal(worker, server.WorkerPids().Single());
        server.WaitForLog("TLS handshake with 127.0.0.1 failed", TimeSpan.FromSeconds(10));
        Assert.DoesNotContain("[ERROR]", server.Log);
    }

    [Fact]
    public void An_expired_certificate_is_served_with_a_warning_and_refused_by_curl()
    {
        var (cert, key) = _certs.Issue("old", expired: true);
        using var server = PreforkServer.Start($"certfile = \"{cert}\"\nkeyfile = \"{key}\"", workers: 1);
        server.WaitForLog("the certificate expired", TimeSpan.FromSeconds(10));
        var curl = Curl(server, "/");
        Assert.NotEqual(0, curl.ExitCode);
        Assert.Contains("expired", curl.Output);
        Assert.Equal(0, Curl(server, "/", "--insecure").ExitCode);
    }

    [Fact]
    public void Bad_certificate_files_fail_check_config_and_the_worker_boot_with_the_reason()
    {
        var (cert, _) = _certs.Issue("one");
        var (_, otherKey) = _certs.Issue("two");
        var (lockedCert, lockedKey) = _certs.Issue("locked", password: "s3cret");
        var config = Path.Combine(_certs.Directory, "gateway.toml");

        (int, string) Check(string toml, Dictionary<string, string>? env = null)
        {
            File.WriteAllText(config, toml);
            return Repo.Run(PreforkServer.Executable, ["--check-config", "-c", config], Path.GetTempPath(), environment: env);
        }
        var (code, output) = Check($"certfile = \"{cert}\"\nkeyfile = \"{otherKey}\"");
        Assert.Equal(1, code);
        Assert.Contains("TLS does not load: cannot load certfile", output);
        (code, output) = Check($"certfile = \"{Path.Combine(_certs.Directory, "missing.pem")}\"");
        Assert.Contains("missing.pem\": no such file", output);
        (code, output) = Check($"certfile = \"{lockedCert}\"\nkeyfile = \"{lockedKey}\"");
        Assert.Equal(1, code);
        (code, output) = Check($"certfile = \"{lockedCert}\"\nkeyfile = \"{lockedKey}\"\nkeyfile_password = \"s3cret\"");
        Assert.True(code == 0, output);
        (code, output) = Check($"certfile = \"{lockedCert}\"\nkeyfile = \"{lockedKey}\"", new() { ["PREFORK_KEYFILE_PASSWORD"] = "s3cret" });
        Assert.True(code == 0, output);
        (code, output) = Check($"certfile = \"{cert}\"\nciphers = \"ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5\"");
        Assert.Equal(1, code);
        Assert.Contains("unknown cipher suite \"RC4-MD5\"", output);
        (code, output) = Check($"certfile = \"{cert}\"\ntls_protocols = [\"TLSv1.1\"]");
        Assert.Equal(1, code);
        Assert.Contains("tls_protocols", output);

        // The master does not load certificates: its workers do, and report why they cannot boot.
        using var server = PreforkServer.Start($"certfile = \"{cert}\"\nkeyfile = \"{otherKey}\"", workers: 1, waitReady: false);
        server.WaitForLog("next attempt in 1 s", TimeSpan.FromSeconds(60));
        Assert.Matches(@"failed to boot and exited with code 4: cannot load certfile [^\n]*two\.key", server.Log);
    }

    [Fact]
    public void An_encrypted_key_is_served_and_its_password_is_never_in_a_workers_environment()
    {
        var (cert, key) = _certs.Issue("locked", password: "s3cret-in-config");
        using (var server = PreforkServer.Start($"certfile = \"{cert}\"\nkeyfile = \"{key}\"\nkeyfile_password = \"s3cret-in-config\"", workers: 1))
        {
            Assert.Equal("200", Curl(server, "/", "-o", "/dev/null", "-w", "%{http_code}").Output);
            AssertNotInEnvironment(server.WorkerPids().Single(), "s3cret-in-config");
        }
        (cert, key) = _certs.Issue("locked", password: "s3cret-in-env");
        using (var server = PreforkServer.Start($"certfile = \"{cert}\"\nkeyfile = \"{key}\"", workers: 1,
            environment: new Dictionary<string, string> { ["PREFORK_KEYFILE_PASSWORD"] = "s3cret-in-env" }))
        {
            Assert.Equal("200", Curl(server, "/", "-o", "/dev/null", "-w", "%{http_code}").Output);
            int worker = server.WorkerPids().Single();
            AssertNotInEnvironment(worker, "s3cret-in-env");
            Assert.DoesNotContain("PREFORK_KEYFILE_PASSWORD", File.ReadAllText($"/proc/{worker}/environ"));
        }
    }

    private static void AssertNotInEnvironment(int pid, string secret)
    {
        var environ = File.ReadAllText($"/proc/{pid}/environ");
        Assert.Contains("PREFORK_CONFIG=", environ); // read it right: the hand-off is there
        Assert.DoesNotContain(secret, environ);
        Assert.DoesNotContain(secret, File.ReadAllText($"/proc/{pid}/cmdline"));
    }

    [Fact]
    public void Ciphers_limit_what_is_negotiated()
    {
        using var server = StartTls("threads", "ciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256\"");
        Assert.Contains("ECDHE-ECDSA-AES128-GCM-SHA256", OpenSsl(server, "-tls1_2").Output);
        Assert.Contains("TLS_AES_128_GCM_SHA256", OpenSsl(server, "-tls1_3").Output);
        Assert.Contains("Cipher is (NONE)", OpenSsl(server, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384").Output);
    }

    [Fact]
    public void The_default_ciphers_are_AEAD_only()
    {
        using var server = StartTls("epoll");
        Assert.Contains("ECDHE-ECDSA-AES128-GCM-SHA256", OpenSsl(server, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256").Output);
        Assert.Contains("Cipher is (NONE)", OpenSsl(server, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA").Output); // CBC: LUCKY13
    }

    [Theory, MemberData(nameof(Classes))]
    public void HUP_with_a_renewed_certificate_under_load_fails_nothing_and_serves_the_new_one(string workerClass)
    {
        using var server = StartTls(workerClass, workers: 2);
        string Serial() => System.Text.RegularExpressions.Regex.Match(
            Repo.Run("sh", ["-c", $"echo | openssl s_client -connect 127.0.0.1:{server.Port} 2>/dev/null | openssl x509 -noout -serial"]).Output,
            "serial=([0-9A-F]+)").Groups[1].Value;
        var before = Serial();
        Assert.NotEqual("", before);

        // Load from before the reload until the new generation has served a while, however long that takes here.
        using var wrk = Wrk.Start(server.Port, connections: 8, seconds: 110, scheme: "https", paceMs: 5);
        Assert.True(Wait.Until(() => server.Status()["counters"]!["requests"]!.GetValue<long>() > 50, TimeSpan.FromSeconds(30)), "no load before the reload");
        _certs.Issue("server"); // the renewal overwrites the files
        server.Signal(Signum.SIGHUP);
        server.WaitForGeneration(2, TimeSpan.FromSeconds(60));
        Thread.Sleep(500); // some load on the new generation
        var result = wrk.Stop();
        Assert.True(result.Requests > 100, result.Output);
        Assert.True(result.Failures == 0, result.ToString() + "\n" + result.Output);
        Assert.True(Wait.Until(() => Serial() is var s && s != before && s != "", TimeSpan.FromSeconds(30)), "the new certificate is served");
    }
}
