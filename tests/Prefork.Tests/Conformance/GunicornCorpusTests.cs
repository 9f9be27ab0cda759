using System.Text;
using Prefork.Config;
using Prefork.SampleApp;
using Prefork.Tests.Integration;
using Prefork.Tests.Support;
using Xunit.Abstractions;

namespace Prefork.Tests.Conformance;

/// <summary>
/// Gunicorn's request corpus (conformance/gunicorn-requests) against our parser and our server.
/// Every case must either do what Gunicorn expects or be listed, with its reason, in
/// conformance/DEVIATIONS.md; every invalid case is rejected without reaching the app.
/// </summary>
public sealed class GunicornCorpusTests(ITestOutputHelper output)
{
    private static readonly DeviationList Listed = DeviationList.Read();

    private static IEnumerable<CorpusCase> Replayed => CorpusCase.All.Where(c => !Listed.NotReplayed.ContainsKey(c.Name));

    [Fact]
    public void The_corpus_is_all_there_and_the_lists_name_real_cases()
    {
        Assert.Equal(63, CorpusCase.All.Count(c => c.Valid));
        Assert.Equal(74, CorpusCase.All.Count(c => !c.Valid));
        Assert.True(File.Exists(Path.Combine(CorpusCase.Root, "LICENSE")));
        var names = CorpusCase.All.Select(c => c.Name).ToHashSet();
        Assert.All(Listed.Deviations.Keys.Concat(Listed.NotReplayed.Keys), name => Assert.Contains(name, names));
        // Only a setting we lack may excuse a case from being replayed, never a default case.
        Assert.All(Listed.NotReplayed.Keys, name =>
            Assert.NotEqual("", CorpusCase.All.Single(c => c.Name == name).SettingsNote));
    }

    [Fact]
    public void Parser_meets_the_corpus_except_the_listed_deviations_in_one_piece_and_byte_by_byte()
    {
        var deviating = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var failures = new List<string>();
        int accepted = 0, rejected = 0;
        foreach (var c in Replayed)
        {
            var config = c.Config();
            var whole = ParserReplay.Run(c.Bytes, config, byteByByte: false);
            var trickled = ParserReplay.Run(c.Bytes, config, byteByByte: true);
            if (!whole.SameAs(trickled) || whole.Error != trickled.Error)
                failures.Add($"{c}: in one piece {whole}, byte by byte {trickled}");
            if (!c.Valid && (!whole.Rejected || whole.Requests.Count > 0))
                failures.Add($"{c}: an invalid case reached the application: {whole}");

            var why = Mismatch(c, whole, config);
            if (why is null) { if (c.Valid) accepted++; else rejected++; }
            else deviating[c.Name] = why;

            if (Listed.Deviations.GetValueOrDefault(c.Name) == "missing-host")
            {
                var withHost = c.WithHost() ?? throw new InvalidOperationException($"{c} is listed as missing-host but has no Host-less request");
                if (Mismatch(withHost, ParserReplay.Run(withHost.Bytes, config, false), config) is { } stillWrong)
                    failures.Add($"{withHost}: deviates even with Host: {stillWrong}");
            }
        }

        foreach (var (name, why) in deviating.Where(d => !Listed.Deviations.ContainsKey(d.Key)))
            failures.Add($"{name} deviates but is not in DEVIATIONS.md: {why}");
        foreach (var name in Listed.Deviations.Keys.Where(n => !deviating.ContainsKey(n)))
            failures.Add($"{name} is listed in DEVIATIONS.md but no longer deviates: remove it");

        output.WriteLine($"Gunicorn corpus: {accepted} valid accepted as expected, {rejected} invalid rejected with the expected error, "
            + $"{deviating.Count} listed deviations, {Listed.NotReplayed.Count} not replayed.");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>Null when the outcome is what Gunicorn expects; otherwise how it differs.</summary>
    private static string? Mismatch(CorpusCase c, Outcome outcome, GatewayConfig config)
    {
        if (c.Valid)
        {
            if (outcome.Rejected) return $"rejected: {outcome}";
            if (outcome.Requests.Count != c.Expected.Count || !outcome.Requests.Zip(c.Expected).All(p => p.First.SameAs(p.Second)))
                return $"accepted differently: got {outcome}; expected {string.Join(" | ", c.Expected)}";
            return null;
        }
        if (!outcome.Rejected) return $"accepted: {outcome}";
        // Without a Host the error is MissingHost whatever else is wrong: judge the variant with one.
        if (outcome.Error == "MissingHost" && c.WithHost() is { } withHost)
            outcome = ParserReplay.Run(withHost.Bytes, config, false);
        var expected = CorpusCase.SameErrorAs[c.GunicornError!];
        return expected.Contains(outcome.Error) ? null
            : $"rejected as {outcome.Error}, where Gunicorn says {c.GunicornError} ({string.Join(" or ", expected)} for us)";
    }

    [Theory]
    [MemberData(nameof(WorkerClassTests.Classes), MemberType = typeof(WorkerClassTests))]
    public void Server_answers_every_case_as_the_parser_decides(string workerClass)
    {
        // One worker per distinct set of settings, its engine run in this process (nine configs
        // times three classes: no process started), side by side; the cases of one worker run one
        // after another (a sync worker keeps a connection alive only while nobody waits).
        var groups = Replayed.SelectMany(c => new[] { c, c.WithHost() }).OfType<CorpusCase>().GroupBy(c => c.Toml).ToList();
        var failures = new List<string>();
        int exchanges = 0;
        Parallel.ForEach(groups, new ParallelOptions { MaxDegreeOfParallelism = 4 }, group =>
        {
            using var server = new InProcessWorker(WorkerClassTests.Toml(workerClass, group.Key), new EchoApplication());
            var config = group.First().Config();
            foreach (var c in group)
            {
                var expected = ParserReplay.Run(c.Bytes, config, byteByByte: false);
                var seen = ServerReplay.Run(server.Port, c.Bytes, out var problem);
                string? failure = problem is not null ? $"{c}: {problem}"
                    : !seen.SameAs(expected) ? $"{c}: the server gave {seen}; the parser decided {expected}"
                    : !c.Valid && (!seen.Rejected || seen.Requests.Count > 0) ? $"{c}: an invalid case reached the application: {seen}"
                    : null;
                lock (failures)
                {
                    exchanges++;
                    if (failure is not null) failures.Add(failure);
                }
            }
        });
        output.WriteLine($"{workerClass}: {exchanges} exchanges on {groups.Count} in-process workers");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
