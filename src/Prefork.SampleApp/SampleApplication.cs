using System.Text;
using System.Text.Json;
using Prefork.Gateway;

namespace Prefork.SampleApp;

/// <summary>
/// The sample application: hello world, plus routes the tests and the benchmark rely on.
///   GET  /                 Hello, World!
///   GET  /healthz          "ok": a cheap route for health checks (deploy/nginx.conf)
///   GET  /pid              this worker's pid, index and generation (JSON)
///   ANY  /echo             the request as the app saw it (JSON: method, path, query, headers, body)
///   POST /echo-body        the request body, as sent
///   POST /upload           "BYTES CHECKSUM": the body read in 64 KiB pieces, never held whole (Fletcher-64 style sum, hex)
///   GET  /bytes/N          N bytes (N may end in k or m)
///   GET  /stream?n=N       N chunks streamed with no Content-Length (chunked on HTTP/1.1)
///   GET  /async-stream     chunks produced by an async iterator
///   GET  /slow?ms=N        sleeps N ms (blocking), then answers
///   GET  /slow-async?ms=N  awaits N ms, then answers
///   GET  /crash            throws (the server answers 500; the worker lives)
///   GET  /env              the PEP 3333 environment (CGI names)
/// </summary>
public sealed class SampleApplication : IGatewayApplication, IWorkerLifecycle
{
    private static readonly byte[] Hello = "Hello, World!"u8.ToArray();
    private static readonly KeyValuePair<string, string>[] TextPlain = [new("Content-Type", "text/plain")];
    private static readonly KeyValuePair<string, string>[] Json = [new("Content-Type", "application/json")];
    private static readonly KeyValuePair<string, string>[] Binary = [new("Content-Type", "application/octet-stream")];
    private static readonly KeyValuePair<string, string>[] NoHeaders = [];
    private readonly Dictionary<int, byte[]> _blobs = new();

    public ResponseBody Invoke(RequestEnvironment env, StartResponse startResponse)
    {
        switch (env.PathInfo)
        {
            case "/":
                startResponse("200 OK", TextPlain);
                return Hello;
            case "/healthz":
                startResponse("200 OK", TextPlain);
                return "ok\n";
            case "/pid":
                startResponse("200 OK", Json);
                return JsonSerializer.SerializeToUtf8Bytes(new
                {
                    pid = Environment.ProcessId, index = env.Worker?.Index, generation = env.Worker?.Generation,
                    master = env.Worker?.MasterPid,
                });
            case "/echo":
                startResponse("200 OK", Json);
                return EchoRequest(env);
            case "/echo-body":
                startResponse("200 OK", Binary);
                return ReadBody(env);
            case "/upload":
                startResponse("200 OK", TextPlain);
                return CountBody(env);
            case "/stream":
                startResponse("200 OK", TextPlain);
                return ResponseBody.Stream(Chunks(QueryInt(env, "n", 5)));
            case "/async-stream":
                startResponse("200 OK", TextPlain);
                return ResponseBody.Stream(AsyncChunks(QueryInt(env, "n", 3), QueryInt(env, "ms", 10)));
            case "/slow":
                Thread.Sleep(QueryInt(env, "ms", 1000));
                startResponse("200 OK", TextPlain);
                return "slept\n";
            case "/slow-async":
                startResponse("200 OK", TextPlain);
                return ResponseBody.Stream(SlowAsync(QueryInt(env, "ms", 1000)));
            case "/crash":
                throw new InvalidOperationException("the sample app's /crash route failed on purpose");
            case "/env":
                startResponse("200 OK", TextPlain);
                return string.Join("\n", env.ToCgiDictionary().Select(kv => $"{kv.Key}={kv.Value}")) + "\n";
            case "/no-content":
                startResponse("204 No Content", NoHeaders);
                return ResponseBody.Empty;
        }
        if (env.PathInfo.StartsWith("/bytes/", StringComparison.Ordinal) && TryParseSize(env.PathInfo[7..], out int size))
        {
            startResponse("200 OK", Binary);
            return Blob(size);
        }
        startResponse("404 Not Found", TextPlain);
        return "Not Found\n";
    }

    private byte[] Blob(int size)
    {
        lock (_blobs)
        {
            if (!_blobs.TryGetValue(size, out var blob))
                _blobs[size] = blob = Enumerable.Range(0, size).Select(i => (byte)('a' + i % 26)).ToArray();
            return blob;
        }
    }

    private static byte[] ReadBody(RequestEnvironment env)
    {
        using var ms = new MemoryStream();
        env.Input.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>
    /// Reads the body through a 64 KiB buffer and answers its length and a position-sensitive sum
    /// (a += byte; b += a, both mod 2^64), so an upload of any size costs the app 64 KiB.
    /// </summary>
    private static string CountBody(RequestEnvironment env)
    {
        var buffer = new byte[64 * 1024];
        long total = 0;
        ulong a = 0, b = 0;
        int n;
        while ((n = env.Input.Read(buffer, 0, buffer.Length)) > 0)
        {
            foreach (var x in buffer.AsSpan(0, n))
            {
                a += x;
                b += a;
            }
            total += n;
        }
        return $"{total} {b:x16}\n";
    }

    private static byte[] EchoRequest(RequestEnvironment env) => JsonSerializer.SerializeToUtf8Bytes(new
    {
        method = env.Method,
        target = env.RawTarget,
        path = env.PathInfo,
        query = env.QueryString,
        protocol = env.Protocol,
        headers = env.Headers.Select(h => new[] { h.Key, h.Value }).ToArray(),
        body = Encoding.Latin1.GetString(ReadBody(env)),
        content_length = env.ContentLength,
        remote_addr = env.RemoteAddr,
        scheme = env.UrlScheme,
        server_name = env.ServerName,
        server_port = env.ServerPort,
    });

    private static IEnumerable<ReadOnlyMemory<byte>> Chunks(int n)
    {
        for (int i = 0; i < n; i++) yield return Encoding.ASCII.GetBytes($"chunk {i}\n");
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> AsyncChunks(int n, int delayMs)
    {
        for (int i = 0; i < n; i++)
        {
            await Task.Delay(delayMs);
            yield return Encoding.ASCII.GetBytes($"async chunk {i}\n");
        }
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> SlowAsync(int ms)
    {
        await Task.Delay(ms);
        yield return "slept\n"u8.ToArray();
    }

    private static int QueryInt(RequestEnvironment env, string name, int fallback)
    {
        foreach (var pair in env.QueryString.Split('&'))
            if (pair.StartsWith(name + "=", StringComparison.Ordinal) && int.TryParse(pair[(name.Length + 1)..], out var v))
                return v;
        return fallback;
    }

    private static bool TryParseSize(string text, out int size)
    {
        int factor = text.EndsWith('k') ? 1024 : text.EndsWith('m') ? 1024 * 1024 : 1;
        var digits = factor == 1 ? text : text[..^1];
        size = int.TryParse(digits, out var n) && n >= 0 && (long)n * factor <= 64 * 1024 * 1024 ? n * factor : 0;
        return size > 0 || digits == "0";
    }

    public void OnWorkerStart(WorkerInfo worker) { }
    public void OnWorkerStop(WorkerInfo worker) { }
}
