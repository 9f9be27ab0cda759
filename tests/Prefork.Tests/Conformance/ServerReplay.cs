using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Prefork.SampleApp;

namespace Prefork.Tests.Conformance;

/// <summary>
/// Replays raw bytes against a running server that serves <see cref="EchoApplication"/>: sends them
/// all, half-closes (so the server sees the end of the bytes just as the parser replay does), reads
/// until the server closes, and turns the responses back into an <see cref="Outcome"/>.
/// </summary>
public static class ServerReplay
{
    /// <summary>The outcome as the client saw it; <paramref name="problem"/> says what was malformed, if anything.</summary>
    public static Outcome Run(int port, byte[] bytes, out string? problem, int timeoutMs = 10_000)
    {
        using var socket = Support.RawHttp.Connect(port, timeoutMs);
        var received = new MemoryStream();
        try
        {
            socket.Send(bytes);
            socket.Shutdown(SocketShutdown.Send);
            var chunk = new byte[16384];
            int n;
            while ((n = socket.Receive(chunk)) > 0) received.Write(chunk, 0, n);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
        {
            problem = $"the server did not close the connection within {timeoutMs} ms; received: {Escape(received.ToArray())}";
            return new Outcome([], null, null);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown)
        {
            // A reset after the server's answer still counts: the answer was read first.
        }
        return Parse(received.ToArray(), out problem);
    }

    /// <summary>
    /// Splits a connection's bytes into responses. Echoes become requests; an error (4xx/5xx) must
    /// be the last response and say Connection: close.
    /// </summary>
    public static Outcome Parse(byte[] data, out string? problem)
    {
        problem = null;
        var requests = new List<SeenRequest>();
        int pos = 0;
        while (pos < data.Length)
        {
            int headEnd = data.AsSpan(pos).IndexOf("\r\n\r\n"u8);
            if (headEnd < 0) { problem = "truncated response head: " + Escape(data[pos..]); break; }
            var lines = Encoding.Latin1.GetString(data, pos, headEnd).Split("\r\n");
            pos += headEnd + 4;
            var statusLine = lines[0];
            if (statusLine.Length < 12 || !statusLine.StartsWith("HTTP/1.1 ", StringComparison.Ordinal)
                || !int.TryParse(statusLine.AsSpan(9, 3), out int status) || (statusLine.Length > 12 && statusLine[12] != ' '))
            {
                problem = "malformed status line: " + statusLine;
                break;
            }
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var line in lines.Skip(1))
            {
                int colon = line.IndexOf(':');
                if (colon <= 0) { problem = "malformed response header: " + line; return new Outcome(requests, null, null); }
                headers[line[..colon]] = line[(colon + 1)..].Trim();
            }
            if (status is >= 100 and < 200) continue;
            byte[] body;
            if (headers.TryGetValue("Transfer-Encoding", out var te) && te == "chunked")
            {
                if (!TryDechunk(data, ref pos, out body)) { problem = "malformed chunked response body"; break; }
            }
            else if (headers.TryGetValue("Content-Length", out var cl) && int.TryParse(cl, out int length) && pos + length <= data.Length)
            {
                body = data[pos..(pos + length)];
                pos += length;
            }
            else { problem = $"response {status} without a usable length"; break; }

            if (status == 200 && headers.ContainsKey(EchoApplication.MarkerHeader))
            {
                requests.Add(FromEcho(body));
                continue;
            }
            if (status >= 400)
            {
                if (!headers.TryGetValue("Connection", out var connection) || connection != "close")
                    problem = $"error {status} without Connection: close";
                else if (pos != data.Length)
                    problem = $"bytes after error {status}: " + Escape(data[pos..]);
                return new Outcome(requests, $"HTTP {status}", status);
            }
            problem = $"unexpected response {statusLine}";
            break;
        }
        return new Outcome(requests, null, null);
    }

    private static SeenRequest FromEcho(byte[] json)
    {
        var e = JsonDocument.Parse(json).RootElement;
        static List<(string, string)> Pairs(JsonElement a) => a.EnumerateArray().Select(p => (p[0].GetString()!, p[1].GetString()!)).ToList();
        return new SeenRequest(e.GetProperty("method").GetString()!, e.GetProperty("target").GetString()!,
            e.GetProperty("protocol").GetString()!, Pairs(e.GetProperty("headers")), e.GetProperty("body").GetString()!,
            Pairs(e.GetProperty("trailers")));
    }

    private static bool TryDechunk(byte[] data, ref int pos, out byte[] body)
    {
        var result = new MemoryStream();
        body = [];
        while (true)
        {
            int lineEnd = data.AsSpan(pos).IndexOf("\r\n"u8);
            if (lineEnd < 0) return false;
            if (!int.TryParse(Encoding.ASCII.GetString(data, pos, lineEnd), System.Globalization.NumberStyles.HexNumber, null, out int size)) return false;
            pos += lineEnd + 2;
            if (pos + size + 2 > data.Length) return false;
            result.Write(data, pos, size);
            pos += size + 2;
            if (size == 0) { body = result.ToArray(); return true; }
        }
    }

    public static string Escape(byte[] bytes)
    {
        var sb = new StringBuilder();
        foreach (var b in bytes.Take(300))
            sb.Append(b switch { (byte)'\r' => "\\r", (byte)'\n' => "\\n", >= 0x20 and < 0x7f => ((char)b).ToString(), _ => $"\\x{b:x2}" });
        if (bytes.Length > 300) sb.Append($"…({bytes.Length} bytes)");
        return sb.ToString();
    }
}
