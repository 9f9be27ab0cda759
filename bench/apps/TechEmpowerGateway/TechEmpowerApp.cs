using Prefork.Gateway;

namespace TechEmpowerGateway;

/// <summary>
/// TechEmpower's four tests through the gateway interface, in its two forms:
///   GET /plaintext   Hello, World! (the bench pipelines 16 per connection)
///   GET /json        {"message":"Hello, World!"}, serialized per request
///   GET /db          one random row of World as {"id":N,"randomNumber":M}
///   GET /fortunes    the Fortune table plus one row added at request time, sorted, escaped, as HTML
/// <see cref="TechEmpowerApp"/> blocks on Npgsql (for sync and threads workers: the thread waits);
/// <see cref="TechEmpowerAsyncApp"/> awaits it (for epoll: the loop serves other connections while
/// PostgreSQL answers). TECHEMPOWER_DB, in the environment the master passes on to its workers, is
/// the Npgsql connection string (pool size per worker, auto-prepare: see <see cref="Database"/>).
/// </summary>
public abstract class TechEmpowerBase : IWorkerLifecycle
{
    protected static readonly KeyValuePair<string, string>[] Text = [new("Content-Type", "text/plain")];
    protected static readonly KeyValuePair<string, string>[] Json = [new("Content-Type", "application/json")];
    protected static readonly KeyValuePair<string, string>[] Html = [new("Content-Type", "text/html; charset=utf-8")];

    private Database? _db;

    public void OnWorkerStart(WorkerInfo worker)
    {
        var connectionString = Environment.GetEnvironmentVariable("TECHEMPOWER_DB");
        if (string.IsNullOrEmpty(connectionString))
            throw new InvalidOperationException("TECHEMPOWER_DB is not set: give the Npgsql connection string of the hello_world database");
        _db = new Database(connectionString);
    }

    public void OnWorkerStop(WorkerInfo worker) => _db?.Dispose();

    protected Database Db => _db ?? throw new InvalidOperationException("the database opens in OnWorkerStart");

    protected static int RandomId() => Random.Shared.Next(1, 10001);

    /// <summary>The tests that need no database, answered the same way by both forms; false for the others.</summary>
    protected static bool TryAnswerWithoutDatabase(string path, StartResponse startResponse, out ResponseBody body)
    {
        switch (path)
        {
            case "/plaintext":
                startResponse("200 OK", Text);
                body = Pages.Plaintext;
                return true;
            case "/json":
                startResponse("200 OK", Json);
                body = Pages.Json();
                return true;
            case "/db" or "/fortunes":
                body = default;
                return false;
            default:
                startResponse("404 Not Found", Text);
                body = "Not Found";
                return true;
        }
    }
}

/// <summary>The blocking form, for the sync and threads worker classes.</summary>
public sealed class TechEmpowerApp : TechEmpowerBase, IGatewayApplication
{
    public ResponseBody Invoke(RequestEnvironment environ, StartResponse startResponse)
    {
        if (TryAnswerWithoutDatabase(environ.PathInfo, startResponse, out var body)) return body;
        if (environ.PathInfo == "/db")
        {
            var world = Db.LoadWorld(RandomId());
            startResponse("200 OK", Json);
            return Pages.Json(world);
        }
        var fortunes = Db.LoadFortunes();
        startResponse("200 OK", Html);
        return Pages.Fortunes(fortunes);
    }
}

/// <summary>The asynchronous form (IAsyncGatewayApplication), for the epoll worker class.</summary>
public sealed class TechEmpowerAsyncApp : TechEmpowerBase, IAsyncGatewayApplication
{
    public async ValueTask<ResponseBody> InvokeAsync(RequestEnvironment environ, StartResponse startResponse)
    {
        if (TryAnswerWithoutDatabase(environ.PathInfo, startResponse, out var body)) return body;
        if (environ.PathInfo == "/db")
        {
            var world = await Db.LoadWorldAsync(RandomId());
            startResponse("200 OK", Json);
            return Pages.Json(world);
        }
        var fortunes = await Db.LoadFortunesAsync();
        startResponse("200 OK", Html);
        return Pages.Fortunes(fortunes);
    }
}
