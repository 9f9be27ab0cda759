using System.Text;
using System.Text.Json.Nodes;
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
///   GET  /bytes/N          N bytes (N may end in k or m; at most 64m)
///   GET  /stream?n=N       N chunks streamed with no Content-Length (chunked on HTTP/1.1; N at most 100000)
///   GET  /async-stream     chunks produced by an async iterator (?n=N&amp;ms=M: N chunks M ms apart)
///   GET  /slow?ms=N        sleeps N ms (blocking; at most 300000, 5 minutes), then answers
///   GET  /slow-async?ms=N  awaits N ms (at most 5 minutes), then answers
///   GET  /crash            throws (the server answers 500; the worker lives)
///   GET  /env              the PEP 3333 environment (CGI names)
/// The sample app is the default `app`, so anyone who reaches a default install reaches these
/// routes: every number a client sends is bounded, and one out of bounds gets 400 with the bounds.
/// Its asynchronous form, with routes that await before they choose their status, is
/// <see cref="AsyncSampleApplication"/>.
/// </summary>
public sealed class SampleApplication : IGatewayApplication, IWorkerLifecycle
{
    private static readonly byte[] Hello = "Hello, World!"u8.ToArray();
    private static readonly KeyValuePair<string, string>[] TextPlain = [new("Content-Type", "text/plain")];
    private static readonly KeyValuePair<string, string>[] Json = [new("Content-Type", "application/json")];
    private static readonly KeyValuePair<string, string>[] Binary = [new("Content-Type", "application/octet-stream")];
    private static readonly KeyValuePair<string, string>[] NoHeaders = [];
    internal const int MaxBlob = 64 << 20, MaxWaitMs = 5 * 60 * 1000, MaxChunks = 100_000;
    internal const long MaxCachedBlobs = 128L << 20; // /bytes/N keeps its answers up to this total; larger ones are built per request
    private readonly Dictionary<int, byte[]> _blobs = new();
    private long _cachedBytes;

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
                return Utf8(new JsonObject
                {
                    ["pid"] = Environment.ProcessId, ["index"] = env.Worker?.Index, ["generation"] = env.Worker?.Generation,
                    ["master"] = env.Worker?.MasterPid,
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
            {
                if (!TryQueryInt(env, "n", 5, MaxChunks, out int n)) return OutOfBounds(startResponse, "n", MaxChunks);
                startResponse("200 OK", TextPlain);
                return ResponseBody.Stream(Chunks(n));
            }
            case "/async-stream":
            {
                if (!TryQueryInt(env, "n", 3, MaxChunks, out int n)) return OutOfBounds(startResponse, "n", MaxChunks);
                if (!TryQueryInt(env, "ms", 10, MaxWaitMs, out int ms)) return OutOfBounds(startResponse, "ms", MaxWaitMs);
                startResponse("200 OK", TextPlain);
                return ResponseBody.Stream(AsyncChunks(n, ms));
            }
            case "/slow":
            {
                if (!TryQueryInt(env, "ms", 1000, MaxWaitMs, out int ms)) return OutOfBounds(startResponse, "ms", MaxWaitMs);
                Thread.Sleep(ms);
                startResponse("200 OK", TextPlain);
                return "slept\n";
            }
            case "/slow-async":
            {
                if (!TryQueryInt(env, "ms", 1000, MaxWaitMs, out int ms)) return OutOfBounds(startResponse, "ms", MaxWaitMs);
                startResponse("200 OK", TextPlain);
                return ResponseBody.Stream(SlowAsync(ms));
            }
            case "/crash":
                throw new InvalidOperationException("the sample app's /crash route failed on purpose");
            case "/env":
                startResponse("200 OK", TextPlain);
                return string.Join("\n", env.ToCgiDictionary().Select(kv => $"{kv.Key}={kv.Value}")) + "\n";
            case "/no-content":
                startResponse("204 No Content", NoHeaders);
                return ResponseBody.Empty;
        }
        if (env.PathInfo.StartsWith("/bytes/", StringComparison.Ordinal))
        {
            if (!TryParseSize(env.PathInfo[7..], out int size))
            {
                startResponse("400 Bad Request", TextPlain);
                return $"/bytes/N: N is a byte count from 0 to {MaxBlob} (or 65536k, or 64m)\n";
            }
            startResponse("200 OK", Binary);
            return Blob(size);
        }
        startResponse("404 Not Found", TextPlain);
        return "Not Found\n";
    }

    /// <summary>N bytes "abc…z" repeated, kept for the next request while the cache holds under <see cref="MaxCachedBlobs"/>.</summary>
    private byte[] Blob(int size)
    {
        lock (_blobs)
        {
            if (_blobs.TryGetValue(size, out var cached)) return cached;
            var blob = Enumerable.Range(0, size).Select(i => (byte)('a' + i % 26)).ToArray();
            if (_cachedBytes + size <= MaxCachedBlobs)
            {
                _blobs[size] = blob;
                _cachedBytes += size;
            }
            return blob;
        }
    }

    /// <summary>Bytes the /bytes/N cache holds (for its test).</summary>
    internal long CachedBytes
    {
        get { lock (_blobs) return _cachedBytes; }
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

    private static byte[] EchoRequest(RequestEnvironment env) => Utf8(new JsonObject
    {
        ["method"] = env.Method,
        ["target"] = env.RawTarget,
        ["path"] = env.PathInfo,
        ["query"] = env.QueryString,
        ["protocol"] = env.Protocol,
        ["headers"] = new JsonArray(env.Headers.Select(h => (JsonNode)new JsonArray(h.Key, h.Value)).ToArray()),
        ["body"] = Encoding.Latin1.GetString(ReadBody(env)),
        ["content_length"] = env.ContentLength,
        ["remote_addr"] = env.RemoteAddr,
        ["scheme"] = env.UrlScheme,
        ["server_name"] = env.ServerName,
        ["server_port"] = env.ServerPort,
    });

    /// <summary>JSON built as nodes, not by reflection over an anonymous type: the app stays trim- and NativeAOT-safe (Prefork.SampleAot).</summary>
    internal static byte[] Utf8(JsonObject json) => Encoding.UTF8.GetBytes(json.ToJsonString());

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

    /// <summary>The query parameter <paramref name="name"/>, or <paramref name="fallback"/> if absent; false unless it is a number from 0 to <paramref name="max"/>.</summary>
    internal static bool TryQueryInt(RequestEnvironment env, string name, int fallback, int max, out int value)
    {
        value = fallback;
        foreach (var pair in env.QueryString.Split('&'))
            if (pair.StartsWith(name + "=", StringComparison.Ordinal))
                return int.TryParse(pair[(name.Length + 1)..], System.Globalization.NumberStyles.None, null, out value) && value <= max;
        return true;
    }

    internal static ResponseBody OutOfBounds(StartResponse startResponse, string name, int max)
    {
        startResponse("400 Bad Request", TextPlain);
        return $"{name} must be a number from 0 to {max}\n";
    }

    private static bool TryParseSize(string text, out int size)
    {
        int factor = text.EndsWith('k') ? 1024 : text.EndsWith('m') ? 1024 * 1024 : 1;
        var digits = factor == 1 ? text : text[..^1];
        bool valid = int.TryParse(digits, System.Globalization.NumberStyles.None, null, out var n) && (long)n * factor <= MaxBlob;
        size = valid ? n * factor : 0;
        return valid;
    }

    public void OnWorkerStart(WorkerInfo worker) { }
    public void OnWorkerStop(WorkerInfo worker) { }
}
