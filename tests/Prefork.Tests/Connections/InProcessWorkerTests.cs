using System.Net.Sockets;
using System.Text;
using Prefork.SampleApp;
using Prefork.Tests.Integration;
using Prefork.Tests.Support;
using Xunit.Abstractions;

namespace Prefork.Tests.Connections;

/// <summary>An engine run in the test process (<see cref="InProcessWorker"/>): what one worker does across requests.</summary>
public sealed class InProcessWorkerTests(ITestOutputHelper output)
{
    // Replay a failure: PREFORK_SEQUENCE_SEED=<seed from the message> dotnet test --filter FullyQualifiedName~InProcessWorkerTests

    /// <summary>A request of the sample app and what it must get whatever came before it: a status and body, or a cut body (null).</summary>
    private sealed record Step(string Request, int? Status, string? Body, bool Closes);

    private static readonly Step[] Menu =
    [
        new("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200, "Hello, World!", false),
        new("GET /async/hello HTTP/1.1\r\nHost: x\r\n\r\n", 200, "Hello, World!", false),
        new("GET /async/yield HTTP/1.1\r\nHost: x\r\n\r\n", 200, "Hello, World!", false),
        new("GET /async/lookup?id=5&ms=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "row 5: 9595\n", false),
        new("GET /async/lookup?id=0&ms=1 HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no row 0\n", false),
        new("GET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "chunk 0\nchunk 1\n", false),
        new("POST /async/upper HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 200, "ABC", false),
        new($"POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{new string('b', 100_000)}", 200, new string('b', 100_000), false), // over 64 KiB: a temp file
        new("GET /bytes/100k HTTP/1.1\r\nHost: x\r\n\r\n", 200, string.Concat(Enumerable.Range(0, 100 * 1024).Select(i => (char)('a' + i % 26))), false), // one piece over 64 KiB: sent at once
        new("GET /crash HTTP/1.1\r\nHost: x\r\n\r\n", 500, null, true),
        new("GET /async/crash?ms=1 HTTP/1.1\r\nHost: x\r\n\r\n", 500, null, true),
        new("GET /async/stream-crash HTTP/1.1\r\nHost: x\r\n\r\n", null, null, true),
        new("GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, null, true),
    ];

    /// <summary>
    /// Hundreds of requests in a random order, on new and kept-alive connections: successes, app
    /// failures before and after bytes left, large bodies both ways, bodies in temp files, malformed
    /// requests. Each gets what it gets on a fresh worker: nothing one request leaves in a reused
    /// writer, buffer or environment reaches a later one.
    /// </summary>
    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void Any_order_of_outcomes_gives_every_request_what_it_gets_alone(string workerClass)
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("PREFORK_SEQUENCE_SEED"), out int chosen) ? chosen : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay with PREFORK_SEQUENCE_SEED={seed})");
        var rng = new Random(seed);
        using var worker = new InProcessWorker(WorkerClassTests.Toml(workerClass), new AsyncSampleApplication());
        Socket? socket = null;
        ResponseReader? reader = null;
        var history = new List<int>();
        try
        {
            for (int i = 0; i < 300; i++)
            {
                int pick = rng.Next(Menu.Length);
                var step = Menu[pick];
                history.Add(pick);
                string context = $"{workerClass}, seed {seed}, request {i} ({step.Request[..step.Request.IndexOf(" HTTP", StringComparison.Ordinal)]}), after menu items [{string.Join(",", history.TakeLast(6))}]";
                if (socket is null || rng.Next(3) == 0)
                {
                    socket?.Dispose(); // one client at a time: a sync worker serves one connection until it ends
                    socket = RawHttp.Connect(worker.Port);
                    reader = new ResponseReader(socket);
                }
                socket.Send(Encoding.Latin1.GetBytes(step.Request));
                if (step.Status is null)
                {
                    var cut = Assert.Throws<IOException>(() => reader!.Read()); // a head, a first chunk, then the close: no last chunk
                    Assert.True(cut.Message.StartsWith("EOF", StringComparison.Ordinal), $"{context}: {cut.Message}");
                }
                else
                {
                    HttpResponse r;
                    try { r = reader!.Read(); }
                    catch (IOException e) { throw new Xunit.Sdk.XunitException($"{context}: {e.Message}"); }
                    Assert.True(r.Status == step.Status, $"{context}: status {r.Status}, expected {step.Status}");
                    if (step.Body is not null) Assert.True(r.BodyText == step.Body, $"{context}: body {r.BodyText[..Math.Min(40, r.BodyText.Length)]}");
                    Assert.True(r.Closed == step.Closes, $"{context}: closed {r.Closed}");
                }
                if (step.Closes)
                {
                    socket.Dispose();
                    socket = null;
                }
            }
        }
        finally
        {
            socket?.Dispose();
        }
    }

    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void A_failure_before_any_byte_left_gets_its_500_after_a_failure_mid_body(string workerClass)
    {
        using var worker = new InProcessWorker(WorkerClassTests.Toml(workerClass), new AsyncSampleApplication());
        for (int round = 0; round < 3; round++)
        {
            // Bytes have left when this fails: a head, a first chunk, then the close (no last chunk).
            using (var socket = RawHttp.Connect(worker.Port))
            {
                socket.Send("GET /async/stream-crash HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
                Assert.StartsWith("EOF", Assert.Throws<IOException>(() => new ResponseReader(socket).Read()).Message);
            }
            // Nothing has left when this one fails: the same serving thread still owes its client a 500.
            var failed = RawHttp.Send(worker.Port, "GET /async/crash?ms=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            Assert.Equal(500, failed.Status);
        }
    }

    /// <summary>
    /// Pipelined behind a small answer still in the buffer and a large one already sent: a failing
    /// request's 500 takes back only its own response, never those before it.
    /// </summary>
    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void A_failing_request_answers_500_after_the_pipelined_responses_before_it(string workerClass)
    {
        using var worker = new InProcessWorker(WorkerClassTests.Toml(workerClass), new AsyncSampleApplication());
        foreach (var before in new[] { "/", "/bytes/100k" })
            foreach (var failing in new[] { "/crash", "/async/crash?ms=1" })
            {
                using var socket = RawHttp.Connect(worker.Port);
                socket.Send(Encoding.ASCII.GetBytes($"GET {before} HTTP/1.1\r\nHost: x\r\n\r\nGET {failing} HTTP/1.1\r\nHost: x\r\n\r\n"));
                var reader = new ResponseReader(socket);
                var first = reader.Read();
                Assert.True(first.Status == 200 && !first.Closed, $"{before} then {failing}: first answer {first.Status}");
                Assert.Equal(before == "/" ? 13 : 100 * 1024, first.Body.Length);
                Assert.Equal(500, reader.Read().Status);
            }
    }

    /// <summary>
    /// TERM as a worker starts, with clients already in the accept queue: it answers every one of them
    /// (keep-alive off) before it exits, whichever of its threads notices the stop first.
    /// </summary>
    [Theory, MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void A_worker_told_to_stop_answers_every_client_already_in_its_accept_queue(string workerClass)
    {
        const int rounds = 20, clients = 30;
        for (int round = 0; round < rounds; round++)
        {
            var sockets = new List<Socket>();
            try
            {
                var worker = new InProcessWorker(WorkerClassTests.Toml(workerClass), new SampleApplication(), beforeStart: port =>
                {
                    for (int i = 0; i < clients; i++)
                    {
                        var socket = RawHttp.Connect(port, timeoutMs: 5_000);
                        sockets.Add(socket);
                        socket.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
                    }
                }, stopAtStart: true);
                var unanswered = new List<string>();
                foreach (var (socket, i) in sockets.Select((s, i) => (s, i)))
                {
                    if (unanswered.Count > 0) socket.ReceiveTimeout = 100; // the engine gave up: the rest need not wait long
                    try
                    {
                        var r = new ResponseReader(socket).Read();
                        if (r.Status != 200 || !r.Closed) unanswered.Add($"client {i}: {r.Status}{(r.Closed ? "" : " kept open")}");
                    }
                    catch (Exception e) when (e is IOException or SocketException)
                    {
                        unanswered.Add($"client {i}: {e.Message}");
                    }
                    socket.Dispose(); // its lingering close ends
                }
                worker.Dispose(); // the engine has ended (it must have, having answered everyone)
                Assert.True(unanswered.Count == 0, $"{workerClass}, round {round}: {unanswered.Count} of {clients} queued clients unanswered: {string.Join("; ", unanswered.Take(5))}");
            }
            finally
            {
                sockets.ForEach(s => s.Dispose());
            }
        }
    }
}
