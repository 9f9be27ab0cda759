using System.Net;
using System.Net.Http;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Prefork.Tests.Support;

namespace Prefork.Tests.AspNetCore;

/// <summary>
/// An ASP.NET Core app that does not reference Prefork.AspNetCore, run under Prefork by the startup hook
/// alone: DOTNET_STARTUP_HOOKS=…/Prefork.AspNetCore.dll is the one variable the master adds.
/// </summary>
public sealed class StartupHookTests : IDisposable
{
    private static readonly TimeSpan Bound = SampleWebProcess.Bound;

    /// <summary>Prefork.AspNetCore.dll as built beside the tests (the master would ship its own copy).</summary>
    private static string Hook => Path.Combine(AppContext.BaseDirectory, "Prefork.AspNetCore.dll");

    /// <summary>Prefork.PlainWeb copied alone to a folder of its own: no Prefork.AspNetCore.dll beside it, none in its deps.json.</summary>
    private readonly string _plain = Directory.CreateTempSubdirectory("prefork-plainweb-").FullName;

    public StartupHookTests()
    {
        foreach (var file in Directory.GetFiles(AppContext.BaseDirectory, "Prefork.PlainWeb.*"))
            File.Copy(file, Path.Combine(_plain, Path.GetFileName(file)));
        Assert.DoesNotContain("Prefork.AspNetCore", File.ReadAllText(Path.Combine(_plain, "Prefork.PlainWeb.deps.json")));
    }

    public void Dispose()
    {
        try { Directory.Delete(_plain, recursive: true); } catch (IOException) { }
    }

    private string PlainWeb => Path.Combine(_plain, "Prefork.PlainWeb.dll");

    [Fact]
    public async Task An_unmodified_app_serves_the_passed_socket_and_reports_to_the_master()
    {
        using var notify = new NotifySocket(@abstract: true);
        using var app = SampleWebProcess.UnderPrefork(notify, new Dictionary<string, string>
        {
            ["DOTNET_STARTUP_HOOKS"] = Hook, ["PREFORK_BACKLOG"] = "55", ["WATCHDOG_USEC"] = "2000000",
        }, dll: PlainWeb);
        Assert.Equal("Hello from an unmodified app", app.WaitUntilServing().BodyText);
        notify.WaitUntil(m => m.Contains("READY=1"), Bound, "READY=1", () => app.Log);
        Assert.Equal([app.Port], app.ListeningPorts());
        Assert.Equal(55, app.Backlog());

        var slow = Task.Run(() => app.Get("/slow?ms=3000"));
        notify.WaitUntil(m => m.Any(h => NotifySocket.Field(h, "PREFORK_PATH") == "/slow" && NotifySocket.Field(h, "WATCHDOG") == "1"),
            Bound, "a heartbeat naming /slow", () => app.Log);
        Assert.Equal(200, (await slow).Status);
    }

    [Fact]
    public void The_real_master_runs_an_unmodified_app_with_the_hook_in_raw_env()
    {
        using var server = PreforkServer.Start(
            $"command = [\"{SampleWebProcess.DotnetHost}\", \"{PlainWeb}\"]\nraw_env = [\"DOTNET_STARTUP_HOOKS={Hook}\"]\ngraceful_timeout = 5\n", workers: 2);
        server.WaitForLog("(READY=1)", Bound, occurrences: 2); // ready = "notify": only Prefork.AspNetCore says it
        var workers = server.WaitForWorkers(2);
        var answering = new HashSet<int>();
        Assert.True(Wait.Until(() => { answering.Add(int.Parse(server.Get("/pid").BodyText)); return answering.Count == 2; }, Bound),
            $"pids answering: {string.Join(",", answering)}\n{server.Log}");
        Assert.Equal(workers.Order(), answering.Order());
        Assert.DoesNotContain("Now listening on: http://localhost:5000", server.Log);
    }

    [Fact]
    public void Without_a_master_the_hook_changes_nothing()
    {
        using var notify = new NotifySocket(@abstract: true);
        using var app = SampleWebProcess.Standalone(new Dictionary<string, string>
        {
            ["DOTNET_STARTUP_HOOKS"] = Hook, ["NOTIFY_SOCKET"] = notify.Name,
        }, dll: PlainWeb);
        Assert.Equal("Hello from an unmodified app", app.Get("/").BodyText);
        Assert.Equal(512, app.Backlog());
        Assert.Empty(notify.Messages);
    }

    [Fact]
    public async Task An_app_that_calls_UsePrefork_itself_is_configured_once_with_its_own_listener_options()
    {
        // The hosting startup runs first (with no listener options); the app's UsePrefork(TLS + HTTP/2) still applies.
        var pfx = Path.Combine(Path.GetTempPath(), $"prefork-sampleweb-{Guid.NewGuid():N}.pfx");
        using var key = RSA.Create(2048);
        using (var cert = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
                   .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1)))
            File.WriteAllBytes(pfx, cert.Export(X509ContentType.Pfx));
        try
        {
            using var notify = new NotifySocket(@abstract: true);
            using var app = SampleWebProcess.UnderPrefork(notify, new Dictionary<string, string>
            {
                ["DOTNET_STARTUP_HOOKS"] = Hook, ["SAMPLEWEB_CERT"] = pfx,
            });
            using var client = new HttpClient(new SocketsHttpHandler
            {
                SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true }, // self-signed, for this test only
            }) { Timeout = Bound };
            var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"https://127.0.0.1:{app.Port}/")
            {
                Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            });
            Assert.Equal("Hello from ASP.NET Core", await response.Content.ReadAsStringAsync());
            notify.WaitUntil(m => m.Contains("READY=1"), Bound, "READY=1", () => app.Log);
            Assert.Single(notify.Messages, m => m == "READY=1");
            Assert.Equal(1, app.Log.Split('\n').Count(l => l.Contains("Serving under Prefork")));
        }
        finally { File.Delete(pfx); }
    }
}
