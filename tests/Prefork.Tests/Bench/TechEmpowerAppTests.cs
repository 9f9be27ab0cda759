using System.Net.Http;
using System.Text.Json;
using Prefork.Tests.Support;

namespace Prefork.Tests.Bench;

/// <summary>
/// The bench's TechEmpower gateway app (bench/apps/TechEmpowerGateway) served by the real prefork
/// against a real PostgreSQL: its blocking form in a sync worker and its asynchronous form in an
/// epoll worker answer /json, /db and /fortunes as TechEmpower's rules say.
/// </summary>
public sealed class TechEmpowerAppTests : IClassFixture<TechEmpowerAppTests.Database>
{
    /// <summary>One PostgreSQL for the class: starting it is most of the cost.</summary>
    public sealed class Database : IDisposable
    {
        public PostgresServer Server { get; } = new();
        public void Dispose() => Server.Dispose();
    }

    private readonly PostgresServer _pg;

    public TechEmpowerAppTests(Database db) => _pg = db.Server;

    [Theory]
    [InlineData("sync", "TechEmpowerApp", "")]
    [InlineData("epoll", "TechEmpowerAsyncApp", "")]
    // As the bench runs it: the commands of concurrent requests share the pool's connections.
    [InlineData("epoll", "TechEmpowerAsyncApp", ";Multiplexing=true")]
    public async Task Answers_json_db_and_fortunes_from_postgresql(string workerClass, string type, string npgsqlOptions)
    {
        // The app's own build folder (the ProjectReference builds it in the tests' configuration):
        // Npgsql's dependencies sit beside it there, as in any app's publish folder.
        var configuration = Path.GetFileName(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)));
        var app = Repo.File($"bench/apps/TechEmpowerGateway/bin/{configuration}/net10.0/TechEmpowerGateway.dll");
        Assert.True(File.Exists(app), $"{app} is not built");
        using var server = PreforkServer.Start($"worker_class = \"{workerClass}\"\napp = \"{app}:TechEmpowerGateway.{type}\"", workers: 1,
            environment: new Dictionary<string, string> { ["TECHEMPOWER_DB"] = _pg.ConnectionString + ";Maximum Pool Size=2" + npgsqlOptions });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.Port}"), Timeout = TimeSpan.FromSeconds(30) };

        var json = await http.GetAsync("/json");
        Assert.Equal("application/json", json.Content.Headers.ContentType?.MediaType);
        Assert.Equal("{\"message\":\"Hello, World!\"}", await json.Content.ReadAsStringAsync());

        var seen = new HashSet<int>();
        for (int i = 0; i < 20; i++)
        {
            using var world = JsonDocument.Parse(await http.GetStringAsync("/db"));
            var props = world.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
            Assert.Equal(["id", "randomNumber"], props);
            int id = world.RootElement.GetProperty("id").GetInt32();
            Assert.InRange(id, 1, 10000);
            Assert.InRange(world.RootElement.GetProperty("randomNumber").GetInt32(), 1, 10000);
            seen.Add(id);
        }
        Assert.True(seen.Count > 1, "every /db answer named the same row: the id is not random");

        // Many at once: on epoll they are in flight together (with multiplexing, their commands
        // share the two connections), and each still gets its own row back whole.
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => http.GetStringAsync("/db")));
        foreach (var body in concurrent)
        {
            using var world = JsonDocument.Parse(body);
            Assert.InRange(world.RootElement.GetProperty("id").GetInt32(), 1, 10000);
            Assert.InRange(world.RootElement.GetProperty("randomNumber").GetInt32(), 1, 10000);
        }

        var fortunes = await http.GetAsync("/fortunes");
        Assert.Equal("text/html", fortunes.Content.Headers.ContentType?.MediaType);
        Assert.Equal("utf-8", fortunes.Content.Headers.ContentType?.CharSet);
        var page = await fortunes.Content.ReadAsStringAsync();
        var rows = page.Split("<tr><td>")[1..].Select(r => r.Split("</td><td>")[1].Split("</td>")[0]).ToArray();
        Assert.Equal(13, rows.Length); // the 12 in the table and the one added at request time
        Assert.StartsWith("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>", page);
        Assert.Equal("&lt;script&gt;alert(&quot;This should not be displayed in a browser alert box.&quot;);&lt;/script&gt;", rows[0]);
        Assert.Contains("<tr><td>0</td><td>Additional fortune added at request time.</td></tr>", page);
        Assert.Equal("フレームワークのベンチマーク", rows[^1]);
        Assert.DoesNotContain("<script>", page);
        var decoded = rows.Select(System.Net.WebUtility.HtmlDecode).ToArray();
        Assert.Equal(decoded.Order(StringComparer.Ordinal), decoded); // sorted by message
    }
}
