using System.Buffers;
using System.Net;
using System.Text;
using Prefork.Config;
using Prefork.Gateway;
using Prefork.Http;

namespace Prefork.Tests.Conformance;

/// <summary>
/// Replays raw bytes through the parsing pieces a worker uses (ProxyProtocol, RequestParser,
/// ChunkedDecoder, ForwardedHeaders), the way a connection would: PROXY header if configured,
/// then head, body, head, body… until the bytes end, a request closes the connection, or an
/// HttpError is thrown. Bytes arrive all at once, one at a time, or in pieces of any size.
/// </summary>
public static class ParserReplay
{
    public const string Incomplete = "Incomplete";

    public static Outcome Run(byte[] bytes, GatewayConfig config, bool byteByByte) =>
        Run(bytes, config, byteByByte ? () => 1 : null);

    /// <summary>Bytes arrive in pieces of <paramref name="nextPiece"/>() bytes; all at once when it is null.</summary>
    public static Outcome Run(byte[] bytes, GatewayConfig config, Func<int>? nextPiece)
    {
        var limits = HttpLimits.From(config);
        var forwarded = ForwardedHeaders.From(config);
        var connection = new ConnectionInfo();
        connection.Set(new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Loopback, 8000));
        var requests = new List<SeenRequest>();
        int start = 0;
        int available = nextPiece is null ? bytes.Length : 0;
        // The next piece, if there is one: false when the client has sent everything.
        bool More()
        {
            if (available == bytes.Length) return false;
            available = Math.Min(bytes.Length, available + Math.Max(1, nextPiece!()));
            return true;
        }
        Outcome Rejected(string error, int status) => new(requests, error, status);

        try
        {
            if (config.Get(Settings.ProxyProtocol))
            {
                while (true)
                {
                    var status = ProxyProtocol.TryParse(bytes.AsSpan(start, available - start), out var header, out int used, out var why);
                    if (status == ProxyHeaderStatus.Parsed) { start += used; connection.Apply(header); break; }
                    if (status == ProxyHeaderStatus.Invalid) throw HttpError.InvalidProxyHeader(why);
                    if (!More()) return start == available ? new Outcome(requests, null, null) : Rejected(Incomplete, 400);
                }
            }
            var head = new RequestHead();
            var decoder = new ChunkedDecoder(limits);
            var body = new ArrayBufferWriter<byte>();
            while (true)
            {
                int consumed;
                while (available == start || !RequestParser.TryParseHead(bytes.AsSpan(start, available - start), head, limits, out consumed))
                    if (!More()) return start == available ? new Outcome(requests, null, null) : Rejected(Incomplete, 400);
                start += consumed;

                body.ResetWrittenCount();
                if (head.ContentLength > limits.Body) throw HttpError.LimitRequestBody(limits.Body);
                if (head.Chunked)
                {
                    decoder.Reset();
                    while (true)
                    {
                        start += decoder.Decode(bytes.AsSpan(start, available - start), body);
                        if (decoder.IsComplete) break;
                        if (!More()) return Rejected(Incomplete, 400);
                    }
                }
                else if (head.ContentLength is long length)
                {
                    while (available - start < length)
                        if (!More()) return Rejected(Incomplete, 400);
                    body.Write(bytes.AsSpan(start, (int)length));
                    start += (int)length;
                }

                var env = new RequestEnvironment();
                forwarded.Apply(head.Headers, connection, env);
                requests.Add(new SeenRequest(head.Method, head.Target, head.Protocol, Pairs(head.Headers),
                    Encoding.Latin1.GetString(body.WrittenSpan), head.Chunked ? Pairs(decoder.Trailers) : []));
                if (!head.KeepAlive) return new Outcome(requests, null, null);
            }
        }
        catch (HttpError e)
        {
            return Rejected(e.Name, e.Status);
        }
    }

    private static List<(string, string)> Pairs(RequestHeaders fields) => fields.Select(f => (f.Key, f.Value)).ToList();
}
