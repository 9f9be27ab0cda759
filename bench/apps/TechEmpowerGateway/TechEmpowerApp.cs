using System.Runtime.CompilerServices;
using Prefork.Gateway;

namespace TechEmpowerGateway;

/// <summary>
/// TechEmpower's four tests through the gateway interface:
///   GET /plaintext   Hello, World! (the bench pipelines 16 per connection)
///   GET /json        {"message":"Hello, World!"}, serialized per request
///   GET /db          one random row of World as {"id":N,"randomNumber":M}
///   GET /fortunes    the Fortune table plus one row added at request time, sorted, escaped, as HTML
/// Configured by the environment the master passes on to its workers:
///   TECHEMPOWER_DB     the Npgsql connection string (pool size, auto-prepare: see <see cref="Database"/>)
///   TECHEMPOWER_ASYNC  1: query with async Npgsql and answer from an asynchronous body, for the epoll
///                      class, whose loop must never block; otherwise blocking calls (sync, threads)
/// </summary>
public sealed class TechEmpowerApp : IGatewayApplication, IWorkerLifecycle
{
    private static readonly KeyValuePair<string, string>[] Text = [new("Content-Type", "text/plain")];
    private static readonly KeyValuePair<string, string>[] Json = [new("Content-Type", "application/json")];
    private static readonly KeyValuePair<string, string>[] Html = [new("Content-Type", "text/html; charset=utf-8")];

    private readonly bool _async = Environment.GetEnvironmentVariable("TECHEMPOWER_ASYNC") == "1";
    private Database? _db;

    public void OnWorkerStart(WorkerInfo worker)
    {
        var connectionString = Environment.GetEnvironmentVariable("TECHEMPOWER_DB");
        if (string.IsNullOrEmpty(connectionString))
            throw new InvalidOperationException("TECHEMPOWER_DB is not set: give the Npgsql connection string of the hello_world database");
        _db = new Database(connectionString);
    }

    public void OnWorkerStop(WorkerInfo worker) => _db?.Dispose();

    private Database Db => _db ?? throw new InvalidOperationException("the database opens in OnWorkerStart");

    public ResponseBody Invoke(RequestEnvironment environ, StartResponse startResponse)
    {
        switch (environ.PathInfo)
        {
            case "/plaintext":
                startResponse("200 OK", Text);
                return Pages.Plaintext;
            case "/json":
                startResponse("200 OK", Json);
                return Pages.Json();
            case "/db" when _async:
                return ResponseBody.Stream(Answer(startResponse, DbAsync(), Json));
            case "/db":
                startResponse("200 OK", Json);
                return Pages.Json(Db.LoadWorld(RandomId()));
            case "/fortunes" when _async:
                return ResponseBody.Stream(Answer(startResponse, FortunesAsync(), Html));
            case "/fortunes":
                startResponse("200 OK", Html);
                return Pages.Fortunes(Db.LoadFortunes());
            default:
                startResponse("404 Not Found", Text);
                return "Not Found";
        }
    }

    private static int RandomId() => Random.Shared.Next(1, 10001);

    private async ValueTask<byte[]> DbAsync() => Pages.Json(await Db.LoadWorldAsync(RandomId()));

    private async ValueTask<byte[]> FortunesAsync() => Pages.Fortunes(await Db.LoadFortunesAsync());

    /// <summary>
    /// An answer whose status is known only after an await: the body awaits it, then starts the
    /// response (with its Content-Length, so it is not sent chunked) before its one chunk.
    /// </summary>
    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Answer(StartResponse startResponse, ValueTask<byte[]> pending,
        KeyValuePair<string, string>[] contentType, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        var body = await pending;
        startResponse("200 OK", [contentType[0], new("Content-Length", body.Length.ToString())]);
        yield return body;
    }
}
