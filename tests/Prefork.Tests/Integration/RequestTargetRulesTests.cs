using System.Text.Json;
using Prefork.SampleApp;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// The request-target and method rules (RFC 9112 §3, RFC 9110 §9.3.6, §10.1.1) against every worker
/// class's engine (in-process): what is refused never reaches the application, gets its status and
/// closes the connection; what is served reaches the app as documented.
/// </summary>
public sealed class RequestTargetRulesTests
{
    /// <summary>Request → the status the server answers with (200: the echo app answered).</summary>
    private static readonly (string Request, int Status)[] Cases =
    [
        ("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),                      // RFC 9112 §3.2, RFC 3986 §3.5
        ("GET http://x/a#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /caf\u00e9 HTTP/1.1\r\nHost: x\r\n\r\n", 400),                    // raw 0xE9: RFC 3986 §2
        ("GET /a\u007fb HTTP/1.1\r\nHost: x\r\n\r\n", 400),                     // DEL
        ("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501), // RFC 9110 §9.3.6
        ("GET example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),     // authority-form: RFC 9112 §3.2.3
        ("DELETE * HTTP/1.1\r\nHost: x\r\n\r\n", 400),                          // asterisk-form: RFC 9112 §3.2.4
        ("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),                               // RFC 9112 §3.2, §3.3
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\nHost: x\r\n\r\n", 501),           // RFC 9112 §3
        (new string('A', 9000) + " / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        ($"GET /{new string('a', 9000)} HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\n", 417), // RFC 9110 §10.1.1
        ("POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\nz", 200),
        ($"GET /{new string('a', 7986)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200), // an 8000-byte line
        ("OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
    ];

    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void Targets_methods_Host_and_Expect_are_answered_as_the_RFCs_say(string workerClass)
    {
        using var server = new InProcessWorker(WorkerClassTests.Toml(workerClass), new EchoApplication());
        var failures = new List<string>();
        foreach (var (request, status) in Cases)
        {
            var r = RawHttp.Send(server.Port, request);
            var reachedApp = r.Header(EchoApplication.MarkerHeader) is not null;
            if (r.Status != status || reachedApp != (status == 200) || (status != 200 && (!r.Closed || r.Header("Connection") != "close")))
                failures.Add($"{ServerReplayEscape(request)} → {r.Status}, reached the app: {reachedApp}, closed: {r.Closed}; expected {status}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));

        // The app sees OPTIONS * with PathInfo and RawTarget "*" (src/Prefork.Gateway/README.md).
        var options = JsonDocument.Parse(RawHttp.Send(server.Port, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").Body).RootElement;
        Assert.Equal(("OPTIONS", "*", "*", ""), (options.GetProperty("method").GetString(), options.GetProperty("target").GetString(),
            options.GetProperty("path").GetString(), options.GetProperty("query").GetString()));
    }

    private static string ServerReplayEscape(string request) =>
        Conformance.ServerReplay.Escape(System.Text.Encoding.Latin1.GetBytes(request));
}
