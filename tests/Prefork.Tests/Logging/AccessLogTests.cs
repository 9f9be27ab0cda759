using System.Diagnostics;
using System.Text;
using Prefork.Gateway;
using Prefork.Http;
using Prefork.Logging;

namespace Prefork.Tests.Logging;

/// <summary>The access log's format language, compiled and run on one request.</summary>
public sealed class AccessLogTests
{
    private static string Line(string format, long bytes)
    {
        var env = new RequestEnvironment { RemoteAddr = "192.0.2.7", PathInfo = "/a b", QueryString = "x=1" };
        env.Headers.Add("User-Agent", "curl/8");
        env.Headers.Add("X-Request-Id", "r-42");
        var head = new RequestHead { Method = "GET", Target = "/a%20b?x=1", VersionMinor = 1 };
        var entry = new AccessLog.Entry(env, head, 404, bytes, Stopwatch.GetTimestamp());
        var line = new StringBuilder();
        foreach (var part in AccessLog.Compile(format)) part(line, entry);
        return line.ToString();
    }

    [Fact]
    public void Every_atom_writes_what_gunicorn_writes()
    {
        Assert.Equal($"192.0.2.7 - - \"GET /a%20b?x=1 HTTP/1.1\" 404 10 10 \"-\" \"curl/8\" r-42 <{Environment.ProcessId}> GET /a b x=1 HTTP/1.1 ?",
            Line("%(h)s %(l)s %(u)s \"%(r)s\" %(s)s %(B)s %(b)s \"%(f)s\" \"%(a)s\" %({X-Request-Id}i)s %(p)s %(m)s %(U)s %(q)s %(H)s ?", 10));
        Assert.Equal("- 0", Line("%(b)s %(B)s", 0)); // %(b)s: "-" for no body, as Apache
        Assert.Matches(@"^\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]$", Line("%(t)s", 0));
        Assert.Matches(@"^0 \d+ \d+ 0\.\d{6}$", Line("%(T)s %(M)s %(D)s %(L)s", 0));
        Assert.Equal("-", Line("%(nonsense)s", 0));
    }
}
