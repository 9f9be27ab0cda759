using System.Net.Sockets;
using System.Text;

namespace Prefork.Tests.Support;

/// <summary>A parsed HTTP response as received over a raw socket.</summary>
public sealed record HttpResponse(int Status, string Head, byte[] Body, bool Closed)
{
    public string BodyText => Encoding.Latin1.GetString(Body);
    public string? Header(string name)
    {
        foreach (var line in Head.Split("\r\n").Skip(1))
        {
            int colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Equals(name, StringComparison.OrdinalIgnoreCase)) return line[(colon + 1)..].Trim();
        }
        return null;
    }
}

/// <summary>
/// Speaks HTTP/1.1 over a plain socket, byte for byte, so tests control exactly what is sent
/// (malformed requests, pipelining) and see exactly what comes back.
/// </summary>
public static class RawHttp
{
    /// <summary>GET <paramref name="path"/> on a connection of its own (Connection: close).</summary>
    public static HttpResponse Get(int port, string path, int timeoutMs = 10_000) =>
        Send(port, $"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeoutMs);

    public static HttpResponse Send(int port, string request, int timeoutMs = 10_000) =>
        Send(port, Encoding.Latin1.GetBytes(request), timeoutMs);

    public static HttpResponse Send(int port, byte[] request, int timeoutMs = 10_000)
    {
        using var socket = Connect(port, timeoutMs);
        socket.Send(request);
        var reader = new ResponseReader(socket);
        return reader.Read(isHead: Encoding.Latin1.GetString(request).StartsWith("HEAD "));
    }

    public static Socket Connect(int port, int timeoutMs = 10_000)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
        {
            ReceiveTimeout = timeoutMs, SendTimeout = timeoutMs, NoDelay = true,
        };
        socket.Connect("127.0.0.1", port);
        return socket;
    }
}

/// <summary>Reads successive responses from one connection (keep-alive and pipelining).</summary>
public sealed class ResponseReader(Socket socket)
{
    private readonly List<byte> _buffer = [];
    private bool _eof;

    public HttpResponse Read(bool isHead = false)
    {
        int headEnd;
        while ((headEnd = IndexOf("\r\n\r\n"u8.ToArray())) < 0)
            if (!Fill()) throw new IOException("connection closed before a response head; got: " + Encoding.Latin1.GetString(_buffer.ToArray()));
        var head = Encoding.Latin1.GetString(_buffer.GetRange(0, headEnd).ToArray());
        _buffer.RemoveRange(0, headEnd + 4);
        int status = int.Parse(head.Split(' ')[1]);
        var probe = new HttpResponse(status, head, [], false);
        byte[] body;
        if (isHead || status is 204 or 304 || (status >= 100 && status < 200)) body = [];
        else if (probe.Header("Transfer-Encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true) body = ReadChunked();
        else if (probe.Header("Content-Length") is { } cl) body = Take(int.Parse(cl));
        else
        {
            while (Fill()) { }
            body = _buffer.ToArray();
            _buffer.Clear();
        }
        bool closed = _eof || probe.Header("Connection")?.Equals("close", StringComparison.OrdinalIgnoreCase) == true;
        return probe with { Body = body, Closed = closed };
    }

    /// <summary>True when the server closed the connection (EOF) within the timeout.</summary>
    public bool WaitForClose()
    {
        try
        {
            while (Fill()) { }
            return true;
        }
        catch (SocketException) { return true; } // reset counts as closed
        catch (IOException) { return false; }
    }

    private byte[] ReadChunked()
    {
        var body = new List<byte>();
        while (true)
        {
            int lineEnd;
            while ((lineEnd = IndexOf("\r\n"u8.ToArray())) < 0) if (!Fill()) throw new IOException("EOF in chunk size");
            var line = Encoding.ASCII.GetString(_buffer.GetRange(0, lineEnd).ToArray());
            _buffer.RemoveRange(0, lineEnd + 2);
            int size = Convert.ToInt32(line.Split(';')[0], 16);
            if (size == 0)
            {
                Take(2); // final CRLF (no trailers from our server)
                return body.ToArray();
            }
            body.AddRange(Take(size));
            Take(2);
        }
    }

    private byte[] Take(int n)
    {
        while (_buffer.Count < n) if (!Fill()) throw new IOException($"EOF: wanted {n} bytes, have {_buffer.Count}");
        var bytes = _buffer.GetRange(0, n).ToArray();
        _buffer.RemoveRange(0, n);
        return bytes;
    }

    private bool Fill()
    {
        if (_eof) return false;
        var chunk = new byte[16384];
        int n;
        try { n = socket.Receive(chunk); }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut) { throw new IOException("timed out waiting for the server"); }
        if (n == 0) { _eof = true; return false; }
        _buffer.AddRange(chunk.AsSpan(0, n).ToArray());
        return true;
    }

    private int IndexOf(byte[] pattern)
    {
        for (int i = 0; i + pattern.Length <= _buffer.Count; i++)
        {
            int j = 0;
            while (j < pattern.Length && _buffer[i + j] == pattern[j]) j++;
            if (j == pattern.Length) return i;
        }
        return -1;
    }
}
