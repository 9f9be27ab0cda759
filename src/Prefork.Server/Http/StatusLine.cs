using System.Text;

namespace Prefork.Http;

/// <summary>Status lines as bytes: common ones built once, others on demand.</summary>
public static class StatusLine
{
    private static readonly Dictionary<int, string> Reasons = new()
    {
        [100] = "Continue", [101] = "Switching Protocols", [200] = "OK", [201] = "Created", [202] = "Accepted",
        [204] = "No Content", [206] = "Partial Content", [301] = "Moved Permanently", [302] = "Found",
        [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
        [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
        [405] = "Method Not Allowed", [408] = "Request Timeout", [411] = "Length Required",
        [413] = "Content Too Large", [414] = "URI Too Long", [415] = "Unsupported Media Type",
        [417] = "Expectation Failed", [422] = "Unprocessable Content", [429] = "Too Many Requests",
        [431] = "Request Header Fields Too Large", [500] = "Internal Server Error", [501] = "Not Implemented",
        [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
        [505] = "HTTP Version Not Supported",
    };

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte[]> Cache = new();

    public static string Reason(int status) => Reasons.GetValueOrDefault(status, "Unknown");

    /// <summary>"HTTP/1.1 200 OK\r\n" for an application's status string such as "200 OK".</summary>
    /// <remarks>Called for every response: reads take no lock (threads workers would contend on one).</remarks>
    public static byte[] For(string status)
    {
        if (Cache.TryGetValue(status, out var line)) return line;
        line = Encoding.Latin1.GetBytes("HTTP/1.1 " + status + "\r\n");
        if (Cache.Count < 256) Cache.TryAdd(status, line); // bounded: an app inventing statuses cannot grow it
        return line;
    }

    /// <summary>Parses the three-digit code at the start of a PEP 3333 status string.</summary>
    public static int Code(string status)
    {
        if (status.Length < 3 || !char.IsAsciiDigit(status[0]) || !char.IsAsciiDigit(status[1]) || !char.IsAsciiDigit(status[2])
            || (status.Length > 3 && status[3] != ' ') || status[0] is < '1' or > '5')
            throw new InvalidOperationException($"status '{status}' is not of the form \"200 OK\"");
        return (status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0');
    }
}
