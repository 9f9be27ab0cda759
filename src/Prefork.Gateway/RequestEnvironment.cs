using System.Text;

namespace Prefork.Gateway;

/// <summary>
/// Everything the server knows about one request: PEP 3333's <c>environ</c>, typed.
/// Read the typed properties on hot paths; the indexer answers the CGI names
/// (<c>REQUEST_METHOD</c>, <c>PATH_INFO</c>, <c>HTTP_USER_AGENT</c>, <c>gateway.url_scheme</c>…)
/// for code that expects them. The server fills it in; one instance may be reused for the next
/// request on the same connection, so do not keep a reference past the response.
/// </summary>
public sealed class RequestEnvironment
{
    /// <summary>REQUEST_METHOD, e.g. "GET".</summary>
    public string Method { get; set; } = "GET";
    /// <summary>The request-target exactly as sent (origin-form, absolute-form, or "*" for OPTIONS *): visible ASCII, no fragment.</summary>
    public string RawTarget { get; set; } = "/";
    /// <summary>SCRIPT_NAME: where the application is mounted; empty at the root.</summary>
    public string ScriptName { get; set; } = "";
    /// <summary>PATH_INFO: the percent-decoded path below <see cref="ScriptName"/>; "*" for OPTIONS *.</summary>
    public string PathInfo { get; set; } = "/";
    /// <summary>QUERY_STRING, without the '?', not decoded.</summary>
    public string QueryString { get; set; } = "";
    /// <summary>SERVER_PROTOCOL, e.g. "HTTP/1.1".</summary>
    public string Protocol { get; set; } = "HTTP/1.1";
    public RequestHeaders Headers { get; } = new();
    /// <summary>CONTENT_LENGTH of the request body (after de-chunking), or null when there is none.</summary>
    public long? ContentLength { get; set; }
    /// <summary>CONTENT_TYPE, or null.</summary>
    public string? ContentType => Headers["Content-Type"];
    public string ServerName { get; set; } = "";
    public string ServerPort { get; set; } = "";
    public string RemoteAddr { get; set; } = "";
    public string RemotePort { get; set; } = "";
    /// <summary>gateway.url_scheme: "http" or "https" (from trusted proxy headers).</summary>
    public string UrlScheme { get; set; } = "http";
    /// <summary>gateway.input: the request body.</summary>
    public Stream Input { get; set; } = Stream.Null;
    /// <summary>gateway.errors: the server's error log.</summary>
    public TextWriter Errors { get; set; } = TextWriter.Null;
    /// <summary>gateway.multithread: other threads of this process may call the app at the same time.</summary>
    public bool Multithread { get; set; }
    /// <summary>gateway.multiprocess: other processes serve the same app.</summary>
    public bool Multiprocess { get; set; } = true;
    /// <summary>gateway.run_once: always false for Prefork.</summary>
    public bool RunOnce => false;
    /// <summary>The worker serving this request.</summary>
    public WorkerInfo? Worker { get; set; }
    /// <summary>Extension keys (PEP 3333 lets servers and middleware add their own).</summary>
    public Dictionary<string, object?> Items => _items ??= new();
    private Dictionary<string, object?>? _items;

    /// <summary>A PEP 3333 / CGI key: REQUEST_METHOD, PATH_INFO, HTTP_HOST, gateway.input, …; null when absent.</summary>
    public object? this[string key] => key switch
    {
        "REQUEST_METHOD" => Method,
        "SCRIPT_NAME" => ScriptName,
        "PATH_INFO" => PathInfo,
        "QUERY_STRING" => QueryString,
        "CONTENT_TYPE" => ContentType ?? "",
        "CONTENT_LENGTH" => ContentLength?.ToString() ?? "",
        "SERVER_NAME" => ServerName,
        "SERVER_PORT" => ServerPort,
        "SERVER_PROTOCOL" => Protocol,
        "REMOTE_ADDR" => RemoteAddr,
        "REMOTE_PORT" => RemotePort,
        "RAW_URI" => RawTarget,
        "gateway.version" => "1.0",
        "gateway.url_scheme" => UrlScheme,
        "gateway.input" => Input,
        "gateway.errors" => Errors,
        "gateway.multithread" => Multithread,
        "gateway.multiprocess" => Multiprocess,
        "gateway.run_once" => RunOnce,
        _ when key.StartsWith("HTTP_", StringComparison.Ordinal) => Headers[CgiToHeaderName(key)],
        _ => _items is not null && _items.TryGetValue(key, out var v) ? v : null,
    };

    /// <summary>Every key as PEP 3333 names it, e.g. for logging or a CGI bridge.</summary>
    public IReadOnlyDictionary<string, object?> ToCgiDictionary()
    {
        var keys = new[] { "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
            "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT",
            "RAW_URI", "gateway.version", "gateway.url_scheme", "gateway.input", "gateway.errors",
            "gateway.multithread", "gateway.multiprocess", "gateway.run_once" };
        var dict = keys.ToDictionary(k => k, k => this[k]);
        foreach (var (name, _) in Headers)
        {
            // As in CGI, Content-Type and Content-Length are not repeated as HTTP_ keys.
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) ||
                name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) continue;
            dict["HTTP_" + name.ToUpperInvariant().Replace('-', '_')] = Headers[name];
        }
        if (_items is not null)
            foreach (var (k, v) in _items) dict[k] = v;
        return dict;
    }

    private static string CgiToHeaderName(string key) => key[5..].Replace('_', '-');
}
