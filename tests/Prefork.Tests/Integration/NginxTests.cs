using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// deploy/nginx.conf as shipped (only its backend addresses and port changed), with Debian's
/// nginx in front of two Prefork masters on 127.0.0.1.
/// </summary>
public sealed class NginxTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    // Mirrors deploy/gateway.toml: Prefork's keepalive outlasts nginx's upstream keepalive_timeout.
    private const string BackendToml = "keepalive = 5";

    private static string SiteConfig(int port1, int port2)
    {
        var shipped = File.ReadAllText(Repo.File("deploy/nginx.conf"));
        Assert.Contains("server prefork-1.example:8000 ", shipped);
        Assert.Contains("server prefork-2.example:8000 ", shipped);
        Assert.Contains("listen 80;", shipped);
        return shipped.Replace("prefork-1.example:8000", $"127.0.0.1:{port1}").Replace("prefork-2.example:8000", $"127.0.0.1:{port2}");
    }

    [Fact]
    public async Task Nginx_spreads_requests_over_both_masters_and_forwards_client_address_and_scheme()
    {
        using var a = PreforkServer.Start(BackendToml, workers: 2);
        using var b = PreforkServer.Start(BackendToml, workers: 2);
        using var nginx = new Nginx(SiteConfig(a.Port, b.Port));
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{nginx.Port}"), Timeout = TimeSpan.FromSeconds(30) };

        var masters = new HashSet<int>();
        for (int i = 0; i < 20; i++)
            masters.Add(ServedBy.Parse(await client.GetStringAsync("/pid")).Master);
        Assert.Equal(new[] { a.MasterPid, b.MasterPid }.Order(), masters.Order());

        // A client's own X-Forwarded-* are replaced by what nginx knows: they cannot be forged.
        using var request = new HttpRequestMessage(HttpMethod.Get, "/echo");
        request.Headers.Add("X-Forwarded-For", "203.0.113.9");
        request.Headers.Add("X-Forwarded-Proto", "https");
        using var response = await client.SendAsync(request);
        var echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var headers = echo.GetProperty("headers").EnumerateArray()
            .Select(h => (Name: h[0].GetString()!.ToLowerInvariant(), Value: h[1].GetString()!)).ToList();
        Assert.Equal([("x-forwarded-for", "127.0.0.1")], headers.Where(h => h.Name == "x-forwarded-for"));
        Assert.Equal([("x-forwarded-proto", "http")], headers.Where(h => h.Name == "x-forwarded-proto"));
        Assert.Equal($"127.0.0.1:{nginx.Port}", headers.Single(h => h.Name == "host").Value);
        Assert.Equal("127.0.0.1", echo.GetProperty("remote_addr").GetString()); // nginx's address, as the backend sees it
        // HTTP/1.1 with no Connection header: the upstream connection is kept alive.
        Assert.Equal("HTTP/1.1", echo.GetProperty("protocol").GetString());
        Assert.DoesNotContain(headers, h => h.Name == "connection");

        Assert.Equal("ok\n", await client.GetStringAsync("/healthz"));
        Assert.Equal("ok\n", await client.GetStringAsync("/nginx-health"));
    }

    [Fact]
    public async Task No_request_is_lost_through_nginx_while_one_master_reloads_and_the_other_stops()
    {
        using var a = PreforkServer.Start(BackendToml, workers: 2);
        using var b = PreforkServer.Start(BackendToml, workers: 2);
        var oldWorkersOfA = a.WaitForWorkers(2);
        b.WaitForWorkers(2);
        using var nginx = new Nginx(SiteConfig(a.Port, b.Port));
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 8 })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{nginx.Port}"), Timeout = TimeSpan.FromSeconds(30),
        };

        // A bounded load: 6 clients in a loop until told to stop (or 3 minutes at most).
        var failures = new ConcurrentQueue<string>();
        var served = new ConcurrentQueue<ServedBy>();
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var load = Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var response = await client.GetAsync("/pid");
                    var body = await response.Content.ReadAsStringAsync();
                    if (response.StatusCode != HttpStatusCode.OK) failures.Enqueue($"{(int)response.StatusCode}: {body}");
                    else served.Enqueue(ServedBy.Parse(body));
                }
                catch (Exception e) { failures.Enqueue(e.GetBaseException().Message); }
            }
        })).ToArray();

        void WaitForMore(int count)
        {
            int target = served.Count + count;
            Wait.Until(() => served.Count >= target || stop.IsCancellationRequested, Bound);
            Assert.True(served.Count >= target, $"the load stalled at {served.Count} responses; failures: {string.Join("; ", failures.Take(5))}");
        }

        try
        {
            WaitForMore(200);

            // Master A reloads: a new generation boots and the old workers are retired under load.
            a.Signal(Signum.SIGHUP);
            a.WaitForGeneration(2, Bound);
            a.WaitForWorkers(2, Bound, pids => !pids.Intersect(oldWorkersOfA).Any());
            WaitForMore(200);

            // Master B stops gracefully: nginx moves everything to A.
            b.Signal(Signum.SIGTERM);
            Assert.True(b.WaitForExit(Bound), b.Log);
            int afterStop = served.Count;
            WaitForMore(200);

            stop.Cancel();
            await Task.WhenAny(Task.WhenAll(load), Task.Delay(Bound));
            var newWorkersOfA = a.WorkerPids();
            Assert.True(failures.IsEmpty, $"{failures.Count} of {failures.Count + served.Count} requests failed through nginx: " +
                string.Join("; ", failures.Distinct().Take(10)) + "\nnginx error log:\n" + nginx.ErrorLog);
            Assert.Contains(served, s => newWorkersOfA.Contains(s.Pid));
            Assert.All(served.Skip(afterStop + 50), s => Assert.Equal(a.MasterPid, s.Master));
        }
        finally
        {
            stop.Cancel();
            await Task.WhenAny(Task.WhenAll(load), Task.Delay(Bound));
        }
    }
}
