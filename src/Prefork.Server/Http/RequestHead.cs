using Prefork.Gateway;

namespace Prefork.Http;

/// <summary>A parsed request line and header section, with the framing decisions derived from them.</summary>
public sealed class RequestHead
{
    public string Method = "";
    public string Target = "";
    /// <summary>1 for HTTP/1.1, 0 for HTTP/1.0.</summary>
    public int VersionMinor;
    public readonly RequestHeaders Headers = new();
    /// <summary>Makes the head's strings, reusing those the previous requests on this connection had.</summary>
    public readonly RecentStrings Strings = new();

    /// <summary>Body length from Content-Length; null when absent (or chunked).</summary>
    public long? ContentLength;
    public bool Chunked;
    /// <summary>What the client asked for: persistent connection per HTTP/1.0/1.1 rules and Connection.</summary>
    public bool KeepAlive;
    public bool ExpectContinue;
    /// <summary>The Host field's value (validated); null when absent.</summary>
    public string? Host;

    public string Protocol => VersionMinor == 1 ? "HTTP/1.1" : "HTTP/1.0";
    public bool HasBody => Chunked || ContentLength > 0;

    public void Reset()
    {
        Method = Target = "";
        VersionMinor = 1;
        Headers.Clear();
        ContentLength = null;
        Chunked = KeepAlive = ExpectContinue = false;
        Host = null;
    }
}
