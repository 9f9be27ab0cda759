using System.Runtime.CompilerServices;

namespace Prefork.Http;

/// <summary>
/// A request the server refuses before it reaches the application. Each named error maps to one
/// status code here, in one place; the connection is closed after the error response.
/// </summary>
public sealed class HttpError : Exception
{
    public int Status { get; }

    /// <summary>Which error this is: the name of the factory that made it (e.g. "InvalidChunk"), for logs and tests.</summary>
    public string Name { get; }

    private HttpError(int status, string message, [CallerMemberName] string name = "") : base(message)
    {
        Status = status;
        Name = name;
    }

    public static HttpError InvalidRequestLine(string why) => new(400, "invalid request line: " + why);
    public static HttpError InvalidMethod(string why) => new(400, "invalid method: " + why);
    public static HttpError MethodTooLong(int limit) => new(501, $"method longer than {limit} characters: not one we implement");
    public static HttpError ConnectNotSupported() => new(501, "CONNECT is not supported: this is an origin server, not a proxy");
    public static HttpError InvalidTarget(string why) => new(400, "invalid request target: " + why);
    public static HttpError InvalidVersion(string why) => new(400, "invalid HTTP version: " + why);
    public static HttpError UnsupportedVersion(string version) => new(505, "HTTP version not supported: " + version);
    public static HttpError InvalidHeaderName(string why) => new(400, "invalid header name: " + why);
    public static HttpError InvalidHeader(string why) => new(400, "invalid header: " + why);
    public static HttpError ExpectationFailed(string expectation) => new(417, $"expectation '{expectation}' cannot be met (only 100-continue can)");
    public static HttpError MissingHost() => new(400, "HTTP/1.1 request without Host");
    public static HttpError ObsoleteFolding() => new(400, "obsolete line folding (obs-fold) is not accepted");
    public static HttpError InvalidFraming(string why) => new(400, "ambiguous or invalid message framing: " + why);
    public static HttpError UnsupportedTransferCoding(string coding) => new(501, "unsupported transfer coding: " + coding);
    public static HttpError InvalidChunk(string why) => new(400, "invalid chunked body: " + why);
    public static HttpError ForbiddenTrailer(string name) => new(400, $"'{name}' is not allowed in a trailer");
    public static HttpError LimitRequestLine(int limit) => new(414, $"request line longer than {limit} bytes");
    public static HttpError LimitRequestFields(int limit) => new(431, $"more than {limit} header fields");
    public static HttpError LimitRequestFieldSize(int limit) => new(431, $"header field longer than {limit} bytes");
    public static HttpError LimitRequestBody(long limit) => new(413, $"request body larger than {limit} bytes");
    public static HttpError BodyNotStored(string why) => new(500, "the request body could not be stored in worker_tmp_dir: " + why);
    public static HttpError IncompleteBody() => new(400, "connection closed before the body was complete");
    public static HttpError InvalidSchemeHeaders(string why) => new(400, "contradictory scheme headers from a trusted proxy: " + why);
    public static HttpError InvalidProxyHeader(string why) => new(400, "invalid PROXY protocol header: " + why);
    public static HttpError ForbiddenProxy(string peer) => new(403, $"PROXY protocol header from {peer}, which is not in proxy_allow_ips");
}
