using System.Diagnostics;
using System.Text;
using Prefork.Config;
using Prefork.Http;
using Prefork.Tests.Conformance;
using Prefork.Tests.Support;
using Xunit.Abstractions;

namespace Prefork.Tests.Integration;

// Replay a failure: PREFORK_FUZZ_SEED=<seed from the message> dotnet test --filter FullyQualifiedName~FuzzTests

/// <summary>
/// Random and mutated requests (from Gunicorn's corpus), bounded in time. Against the parser:
/// nothing but an HttpError ever escapes, and one piece or many pieces decide alike. Against the
/// real server: every connection gets well-formed responses (an error closes it) or just a close,
/// the server decides exactly as the parser does, and no worker dies. A fixed seed runs first,
/// then a fresh one; a failure names the seed (set PREFORK_FUZZ_SEED to replay it, and
/// PREFORK_FUZZ_SECONDS for a longer run).
/// </summary>
[LongClass]
public sealed class FuzzTests(ITestOutputHelper output)
{
    private const int FixedSeed = 20261126;
    // PREFORK_FUZZ_SECONDS scales both up for a longer campaign than the suite's.
    private static readonly double Scale =
        double.TryParse(Environment.GetEnvironmentVariable("PREFORK_FUZZ_SECONDS"), out var s) && s > 0 ? s / 10 : 1;
    private static readonly TimeSpan ParserBudget = TimeSpan.FromSeconds(2 * Scale);
    private static readonly TimeSpan ServerBudget = TimeSpan.FromSeconds(8 * Scale); // shared by all worker classes

    /// <summary>The seeds of this run (written to the test output, so even a hang can be replayed).</summary>
    private IReadOnlyList<int> Seeds()
    {
        int[] seeds = int.TryParse(Environment.GetEnvironmentVariable("PREFORK_FUZZ_SEED"), out int chosen) ? [chosen] : [FixedSeed, Random.Shared.Next()];
        output.WriteLine($"seeds {string.Join(", ", seeds)} (replay one with PREFORK_FUZZ_SEED=<seed>)");
        return seeds;
    }

    [Fact]
    public void The_parser_throws_only_HttpError_and_decides_alike_in_one_piece_and_in_pieces()
    {
        var config = ConfigLoader.Parse(null, null);
        var proxyConfig = ConfigLoader.Parse("proxy_protocol = true", null);
        int inputs = 0;
        foreach (int seed in Seeds())
        {
            var rng = new Random(seed);
            var until = Stopwatch.StartNew();
            while (until.Elapsed < ParserBudget / 2)
            {
                var input = RequestFuzzer.Next(rng);
                var c = rng.Next(4) == 0 ? proxyConfig : config;
                Outcome whole, trickled;
                try
                {
                    whole = ParserReplay.Run(input, c, byteByByte: false);
                    // Byte by byte is quadratic in a long head: long inputs come in random pieces instead.
                    trickled = input.Length < 2000 ? ParserReplay.Run(input, c, byteByByte: true)
                        : ParserReplay.Run(input, c, () => rng.Next(1, 512));
                }
                catch (Exception e)
                {
                    throw new Xunit.Sdk.XunitException($"seed {seed}: {e.GetType().Name} escaped the parser for {ServerReplay.Escape(input)}\n{e}");
                }
                Assert.True(whole.SameAs(trickled) && whole.Error == trickled.Error,
                    $"seed {seed}: {ServerReplay.Escape(input)}\nin one piece: {whole}\nin pieces: {trickled}");
                inputs++;
            }
        }
        output.WriteLine($"{inputs} inputs");
    }

    [Theory]
    [MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void The_server_answers_well_or_closes_decides_as_the_parser_and_no_worker_dies(string workerClass)
    {
        var budget = ServerBudget / WorkerClassTests.Classes.Count;
        var echo = $"worker_class = \"{workerClass}\"\napp = \"Prefork.SampleApp:Prefork.SampleApp.EchoApplication\"\n";
        // A plain listener, and one behind the PROXY protocol (most inputs then get a valid header first).
        var servers = new[] { "", "proxy_protocol = true" }.AsParallel().AsOrdered()
            .Select(extra => (Server: PreforkServer.Start(echo + extra, workers: 1), Config: ConfigLoader.Parse(extra, null))).ToArray();
        try
        {
            var pids = servers.Select(s => s.Server.WaitForWorkers(1)).ToArray();
            int exchanges = 0;
            var seeds = Seeds();
            foreach (int seed in seeds)
            {
                var rng = new Random(seed);
                var clock = Stopwatch.StartNew();
                // One client at a time: a sync worker ends keep-alive when others wait, which the parser cannot know.
                while (clock.Elapsed < budget / 2)
                {
                    var (server, config) = servers[rng.Next(4) == 0 ? 1 : 0];
                    var input = RequestFuzzer.Next(rng);
                    if (config.Get(Settings.ProxyProtocol) && rng.Next(10) < 7) input = [.. RequestFuzzer.ProxyHeader(rng), .. input];
                    var expected = ParserReplay.Run(input, config, byteByByte: false);
                    var seen = ServerReplay.Run(server.Port, input, out var problem);
                    string context = $"{workerClass}{(config.Get(Settings.ProxyProtocol) ? " behind PROXY" : "")}, seed {seed}, exchange {exchanges}: {ServerReplay.Escape(input)}";
                    Assert.True(problem is null, $"{context}\nmalformed answer: {problem}");
                    Assert.True(seen.SameAs(expected), $"{context}\nthe server gave {seen}\nthe parser decided {expected}");
                    exchanges++;
                }
                for (int i = 0; i < servers.Length; i++)
                    Assert.True(pids[i].SequenceEqual(servers[i].Server.WorkerPids()), $"{workerClass}, seed {seed}: a worker died. Log:\n{servers[i].Server.Log}");
            }
            Assert.True(servers[0].Server.Get("/").Status == 200, $"{workerClass}, seeds {string.Join(", ", seeds)}: GET / failed after the run");
            for (int i = 0; i < servers.Length; i++)
                Assert.True(pids[i].SequenceEqual(servers[i].Server.WorkerPids()), $"{workerClass}, seeds {string.Join(", ", seeds)}: a worker died. Log:\n{servers[i].Server.Log}");
            output.WriteLine($"{workerClass}: {exchanges} exchanges");
        }
        finally
        {
            foreach (var (server, _) in servers) server.Dispose();
        }
    }
}

/// <summary>Makes request-shaped bytes: corpus cases mutated a few times, spliced, or plain noise.</summary>
public static class RequestFuzzer
{
    private static readonly byte[][] Seeds = CorpusCase.All.Select(c => c.Bytes).ToArray();

    private static readonly byte[][] Tokens = new[]
    {
        "\r\n", "\n", "\r", "\0", " ", "\t", ":", ";", ",", "=", "\"", "0", "ffffffffffffffff", "-1", "\x80", "\xff", "\x7f",
        "\r\n\r\n", "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip, chunked\r\n", "Content-Length: 5\r\n",
        "Content-Length: 0\r\n", "Content-Length: 99999999999\r\n", "Host: x\r\n", "Connection: close\r\n", "Connection: keep-alive\r\n",
        "Expect: 100-continue\r\n", "X-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n", "Forwarded: for=\"[::1]:80\";proto=https\r\n",
        "X-Forwarded-Proto: https\r\n", "X-Forwarded-Ssl: off\r\n", " HTTP/1.1", " HTTP/1.0", " HTTP/2.0", "GET / HTTP/1.1\r\n",
        "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n", "0\r\n\r\n", "5;a=\"b\"\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "\r\n\r\n\0\r\nQUIT\n", "http://a.b:1/x", "*", "%00", "_",
    }.Select(t => Encoding.Latin1.GetBytes(t)).ToArray();

    /// <summary>A valid PROXY header, v1 or v2, IPv4 or IPv6, or LOCAL.</summary>
    public static byte[] ProxyHeader(Random rng)
    {
        switch (rng.Next(4))
        {
            case 0: return Encoding.ASCII.GetBytes($"PROXY TCP4 203.0.113.{rng.Next(256)} 192.0.2.1 {rng.Next(65536)} 443\r\n");
            case 1: return Encoding.ASCII.GetBytes($"PROXY TCP6 2001:db8::{rng.Next(65536):x} 2001:db8::1 {rng.Next(65536)} 443\r\n");
            case 2: return [.. "\r\n\r\n\0\r\nQUIT\n"u8.ToArray(), 0x21, 0x11, 0, 12, 203, 0, 113, (byte)rng.Next(256), 192, 0, 2, 1, 0x30, 0x39, 0x01, 0xbb];
            default: return [.. "\r\n\r\n\0\r\nQUIT\n"u8.ToArray(), 0x20, 0x00, 0, 0];
        }
    }

    public static byte[] Next(Random rng)
    {
        while (true)
        {
            var bytes = Generate(rng);
            // A HEAD's response has a length but no body; the replay reads echoes, so leave HEAD out.
            if (bytes.AsSpan().IndexOf("HEAD"u8) < 0) return bytes;
        }
    }

    private static byte[] Generate(Random rng)
    {
        if (rng.Next(10) == 0)
        {
            var noise = new byte[rng.Next(0, 300)];
            rng.NextBytes(noise);
            return noise;
        }
        var data = new List<byte>(Seeds[rng.Next(Seeds.Length)]);
        for (int m = rng.Next(1, 5); m > 0; m--) Mutate(rng, data);
        return data.ToArray();
    }

    private static void Mutate(Random rng, List<byte> data)
    {
        int at = rng.Next(data.Count + 1);
        switch (rng.Next(8))
        {
            case 0 when data.Count > 0: // change a byte
                data[Math.Min(at, data.Count - 1)] = (byte)rng.Next(256);
                break;
            case 1: // insert a token that matters to the grammar
                data.InsertRange(at, Tokens[rng.Next(Tokens.Length)]);
                break;
            case 2 when data.Count > 0: // delete a stretch
                data.RemoveRange(Math.Min(at, data.Count - 1), Math.Min(rng.Next(1, 20), data.Count - Math.Min(at, data.Count - 1)));
                break;
            case 3 when at < data.Count: // repeat a stretch
                var stretch = data.GetRange(at, Math.Min(rng.Next(1, 200), data.Count - at));
                data.InsertRange(at, stretch);
                break;
            case 4: // cut off the end
                data.RemoveRange(at, data.Count - at);
                break;
            case 5: // glue on the tail of another case
                var other = Seeds[rng.Next(Seeds.Length)];
                data.AddRange(other.Skip(rng.Next(other.Length + 1)));
                break;
            case 6: // a long run, to cross the limits
                data.InsertRange(at, Enumerable.Repeat((byte)'a', rng.Next(1, 9000)));
                break;
            default: // a number changed into another
                int digit = data.FindIndex(Math.Min(at, data.Count), b => b is >= (byte)'0' and <= (byte)'9');
                if (digit >= 0) data[digit] = (byte)"0123456789abcdefF-+ "[rng.Next(20)];
                break;
        }
    }
}
