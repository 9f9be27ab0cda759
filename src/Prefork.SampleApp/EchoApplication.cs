using System.Text;
using System.Text.Json.Nodes;
using Prefork.Gateway;

namespace Prefork.SampleApp;

/// <summary>
/// Answers every request, whatever its path, with a JSON echo of what the server handed the
/// application: method, raw target, protocol, header fields in arrival order, the body (Latin-1,
/// so any byte survives), trailer fields of a chunked body, and the client address and scheme.
/// The conformance tests compare it with the expectations of the request corpus.
/// Load it with <c>app = "Prefork.SampleApp:Prefork.SampleApp.EchoApplication"</c>.
/// </summary>
public sealed class EchoApplication : IGatewayApplication
{
    /// <summary>Set on every echo, so a test can tell an answer of the app from one of the server.</summary>
    public const string MarkerHeader = "X-Prefork-Echo";

    private static readonly KeyValuePair<string, string>[] Headers =
        [new("Content-Type", "application/json"), new(MarkerHeader, "1")];

    public ResponseBody Invoke(RequestEnvironment env, StartResponse startResponse)
    {
        using var body = new MemoryStream();
        env.Input.CopyTo(body);
        var trailers = env.Items.TryGetValue("gateway.trailers", out var t) && t is RequestHeaders fields ? Pairs(fields) : new JsonArray();
        startResponse("200 OK", Headers);
        return SampleApplication.Utf8(new JsonObject
        {
            ["method"] = env.Method,
            ["target"] = env.RawTarget,
            ["protocol"] = env.Protocol,
            ["headers"] = Pairs(env.Headers),
            ["body"] = Encoding.Latin1.GetString(body.GetBuffer(), 0, (int)body.Length),
            ["trailers"] = trailers,
            ["remote_addr"] = env.RemoteAddr,
            ["remote_port"] = env.RemotePort,
            ["scheme"] = env.UrlScheme,
            ["server_name"] = env.ServerName,
            ["server_port"] = env.ServerPort,
            ["path"] = env.PathInfo,
            ["query"] = env.QueryString,
        });
    }

    private static JsonArray Pairs(RequestHeaders fields)
    {
        var pairs = new JsonArray();
        for (int i = 0; i < fields.Count; i++) pairs.Add((JsonNode)new JsonArray(fields[i].Key, fields[i].Value));
        return pairs;
    }
}
