using System.Text;
using Prefork.Gateway;

namespace Prefork.SampleApp;

/// <summary>
/// The sample application in its asynchronous form (<see cref="IAsyncGatewayApplication"/>): routes
/// that await before they know their status, the way an app awaits a database query. Every other
/// path is answered by <see cref="SampleApplication"/>, so "/" and the rest work here too.
///   GET  /async/hello            Hello, World! without awaiting (the task is complete when returned)
///   GET  /async/yield            Hello, World! after one await Task.Yield()
///   GET  /async/lookup?id=N&amp;ms=M  awaits a pretend query of M ms (default 10), then 200 with row N if
///                                N is 1 to 10000, else 404 (the status is chosen after the await)
///   GET  /async/crash?ms=M       awaits M ms, then throws (the server answers 500; the worker lives)
///   GET  /async/stamps?ms=M      awaits M ms; answers "PID START END", Environment.TickCount64 before
///                                and after the await (how tests see requests overlap in one worker)
///   GET  /async/block?ms=M       awaits once, then blocks its thread M ms (on epoll: the whole loop)
///   POST /async/upper            the request body, read with ReadAsync, upper-cased (ASCII)
/// Load it with <c>app = "Prefork.SampleApp:Prefork.SampleApp.AsyncSampleApplication"</c>.
/// </summary>
public sealed class AsyncSampleApplication : IAsyncGatewayApplication, IWorkerLifecycle
{
    private static readonly byte[] Hello = "Hello, World!"u8.ToArray();
    private static readonly KeyValuePair<string, string>[] TextPlain = [new("Content-Type", "text/plain")];
    private const int Rows = 10_000;
    private readonly SampleApplication _sync = new();

    public ValueTask<ResponseBody> InvokeAsync(RequestEnvironment env, StartResponse startResponse) => env.PathInfo switch
    {
        // Completes at once: no task is allocated, and no thread waits.
        "/async/hello" => ValueTask.FromResult(Answer(startResponse, Hello)),
        "/async/yield" => YieldThenHello(startResponse),
        "/async/lookup" => Lookup(env, startResponse),
        "/async/crash" => CrashAfterAwait(env, startResponse),
        "/async/stamps" => Stamps(env, startResponse),
        "/async/block" => BlockAfterAwait(env, startResponse),
        "/async/upper" => Upper(env, startResponse),
        _ => ValueTask.FromResult(_sync.Invoke(env, startResponse)),
    };

    private static ResponseBody Answer(StartResponse startResponse, ResponseBody body)
    {
        startResponse("200 OK", TextPlain);
        return body;
    }

    private static async ValueTask<ResponseBody> YieldThenHello(StartResponse startResponse)
    {
        await Task.Yield();
        return Answer(startResponse, Hello);
    }

    /// <summary>The shape of a database-backed route: await the query, then decide the status from its result.</summary>
    private static async ValueTask<ResponseBody> Lookup(RequestEnvironment env, StartResponse startResponse)
    {
        if (!SampleApplication.TryQueryInt(env, "id", 1, int.MaxValue, out int id)) return SampleApplication.OutOfBounds(startResponse, "id", int.MaxValue);
        if (!SampleApplication.TryQueryInt(env, "ms", 10, SampleApplication.MaxWaitMs, out int ms)) return SampleApplication.OutOfBounds(startResponse, "ms", SampleApplication.MaxWaitMs);
        string? row = await QueryRow(id, ms);
        if (row is null)
        {
            startResponse("404 Not Found", TextPlain);
            return $"no row {id}\n";
        }
        startResponse("200 OK", TextPlain);
        return row;
    }

    /// <summary>Stands in for a database query: <paramref name="ms"/> of waiting, then a row or none.</summary>
    private static async Task<string?> QueryRow(int id, int ms)
    {
        await Task.Delay(ms);
        return id is >= 1 and <= Rows ? $"row {id}: {id * 7919 % Rows}\n" : null;
    }

    private static async ValueTask<ResponseBody> CrashAfterAwait(RequestEnvironment env, StartResponse startResponse)
    {
        if (!SampleApplication.TryQueryInt(env, "ms", 10, SampleApplication.MaxWaitMs, out int ms)) return SampleApplication.OutOfBounds(startResponse, "ms", SampleApplication.MaxWaitMs);
        await Task.Delay(ms);
        throw new InvalidOperationException("the sample app's /async/crash route failed on purpose, after an await");
    }

    private static async ValueTask<ResponseBody> Stamps(RequestEnvironment env, StartResponse startResponse)
    {
        if (!SampleApplication.TryQueryInt(env, "ms", 1000, SampleApplication.MaxWaitMs, out int ms)) return SampleApplication.OutOfBounds(startResponse, "ms", SampleApplication.MaxWaitMs);
        long start = Environment.TickCount64;
        await Task.Delay(ms);
        long end = Environment.TickCount64;
        return Answer(startResponse, $"{Environment.ProcessId} {start} {end}\n");
    }

    private static async ValueTask<ResponseBody> BlockAfterAwait(RequestEnvironment env, StartResponse startResponse)
    {
        if (!SampleApplication.TryQueryInt(env, "ms", 1000, SampleApplication.MaxWaitMs, out int ms)) return SampleApplication.OutOfBounds(startResponse, "ms", SampleApplication.MaxWaitMs);
        await Task.Delay(10);
        Thread.Sleep(ms); // what an async app must never do on epoll: the loop serves nobody meanwhile
        return Answer(startResponse, "blocked\n");
    }

    /// <summary>
    /// Reading the body asynchronously: the server received it whole before calling the app (in
    /// memory, or past 64 KiB in a temp file), so these reads never wait for the client.
    /// </summary>
    private static async ValueTask<ResponseBody> Upper(RequestEnvironment env, StartResponse startResponse)
    {
        using var body = new MemoryStream();
        await env.Input.CopyToAsync(body);
        startResponse("200 OK", TextPlain);
        return Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(body.GetBuffer(), 0, (int)body.Length).ToUpperInvariant());
    }

    public void OnWorkerStart(WorkerInfo worker) => _sync.OnWorkerStart(worker);
    public void OnWorkerStop(WorkerInfo worker) => _sync.OnWorkerStop(worker);
}
