using System.Text;
using System.Text.Json;
using Prefork.Config;

namespace Prefork.Tests.Conformance;

/// <summary>One request as expected by the corpus, or as our parser or the echo app saw it.</summary>
public sealed record SeenRequest(string Method, string Target, string Protocol,
    IReadOnlyList<(string Name, string Value)> Headers, string Body, IReadOnlyList<(string Name, string Value)> Trailers)
{
    public override string ToString() =>
        $"{Method} {Shorten(Target)} {Protocol} [{string.Join("; ", Headers.Select(h => $"{Shorten(h.Name)}: {Shorten(h.Value)}"))}] body={Shorten(Body)}"
        + (Trailers.Count > 0 ? $" trailers=[{string.Join("; ", Trailers.Select(h => $"{Shorten(h.Name)}: {Shorten(h.Value)}"))}]" : "");

    private static string Shorten(string s) => s.Length > 40 ? s[..40] + $"…({s.Length})" : s;

    /// <summary>Same request field by field; names compare case-insensitively (the corpus upper-cases them).</summary>
    public bool SameAs(SeenRequest other) =>
        Method == other.Method && Target == other.Target && Protocol == other.Protocol && Body == other.Body
        && SameFields(Headers, other.Headers) && SameFields(Trailers, other.Trailers);

    private static bool SameFields(IReadOnlyList<(string Name, string Value)> a, IReadOnlyList<(string Name, string Value)> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Name.Equals(p.Second.Name, StringComparison.OrdinalIgnoreCase) && p.First.Value == p.Second.Value);
}

/// <summary>
/// What a connection came to: the requests that reached the application, then (maybe) the error
/// that ended it. <see cref="Error"/> is an HttpError name, or "Incomplete" when the bytes ran out
/// in the middle of a message; <see cref="Status"/> is the status the server answers it with.
/// </summary>
public sealed record Outcome(IReadOnlyList<SeenRequest> Requests, string? Error, int? Status)
{
    public bool Rejected => Error is not null;
    public override string ToString() =>
        $"{Requests.Count} request(s){(Requests.Count > 0 ? ": " + string.Join(" | ", Requests) : "")}"
        + (Error is null ? "" : $", then rejected: {Error} ({Status})");

    public bool SameAs(Outcome other) =>
        Requests.Count == other.Requests.Count && Requests.Zip(other.Requests).All(p => p.First.SameAs(p.Second))
        && Status == other.Status;
}

/// <summary>
/// One case of Gunicorn's request corpus (tests/Prefork.Tests/conformance/gunicorn-requests, see
/// its README): raw bytes, what Gunicorn expects, and the Gunicorn settings it needs, mapped to ours.
/// </summary>
public sealed class CorpusCase
{
    public const string AddedHost = "conformance.test";
    public static readonly string Root = Path.Combine(AppContext.BaseDirectory, "conformance", "gunicorn-requests");

    /// <summary>
    /// Gunicorn's defaults that are not ours. limit_request_line: Gunicorn's 4094 (invalid/006 is a
    /// 4114-byte line); ours is 8190, since RFC 9112 §3 recommends supporting at least 8000 octets.
    /// Declared before <see cref="All"/>, which needs it: static fields initialise in order.
    /// </summary>
    private static readonly Dictionary<string, string> GunicornDefaults = new() { ["limit_request_line"] = "limit_request_line = 4094" };

    public required string Name { get; init; }          // "valid/004"
    public required bool Valid { get; init; }
    public required byte[] Bytes { get; init; }
    public required IReadOnlyList<SeenRequest> Expected { get; init; }  // valid cases
    public required string? GunicornError { get; init; }                 // invalid cases
    public required string Toml { get; init; }                          // our settings for it, defaults left out
    public required string SettingsNote { get; init; }

    public override string ToString() => Name;

    public GatewayConfig Config() => ConfigLoader.Parse(Toml, null);

    public static IReadOnlyList<CorpusCase> All { get; } = Load();

    private static List<CorpusCase> Load()
    {
        var cases = new List<CorpusCase>();
        foreach (var kind in new[] { "valid", "invalid" })
            foreach (var json in Directory.GetFiles(Path.Combine(Root, kind), "*.json").Order(StringComparer.Ordinal))
                cases.Add(Read(kind, json));
        return cases;
    }

    private static CorpusCase Read(string kind, string jsonPath)
    {
        var doc = JsonDocument.Parse(File.ReadAllText(jsonPath)).RootElement;
        var expected = new List<SeenRequest>();
        if (doc.TryGetProperty("requests", out var requests))
            foreach (var r in requests.EnumerateArray())
                expected.Add(new SeenRequest(
                    r.GetProperty("method").GetString()!,
                    r.GetProperty("uri").GetString()!,
                    $"HTTP/{r.GetProperty("version")[0].GetInt32()}.{r.GetProperty("version")[1].GetInt32()}",
                    Fields(r.GetProperty("headers")),
                    r.GetProperty("body").GetString()!,
                    r.TryGetProperty("trailers", out var t) ? Fields(t) : []));
        var (toml, note) = MapSettings(doc.TryGetProperty("gunicorn_settings", out var s) ? s : null);
        return new CorpusCase
        {
            Name = $"{kind}/{Path.GetFileNameWithoutExtension(jsonPath)}",
            Valid = kind == "valid",
            Bytes = File.ReadAllBytes(Path.ChangeExtension(jsonPath, ".http")),
            Expected = expected,
            GunicornError = doc.TryGetProperty("gunicorn_error", out var e) ? e.GetString() : null,
            Toml = toml,
            SettingsNote = note,
        };
    }

    private static List<(string, string)> Fields(JsonElement pairs) =>
        pairs.EnumerateArray().Select(p => (p[0].GetString()!, p[1].GetString()!)).ToList();

    /// <summary>
    /// Gunicorn settings → ours. Values that mean the same are carried over (Gunicorn caps
    /// limit_request_line at 8190 as we do; its limit_request_field_size = 0 means its default 8190).
    /// Settings we have no equivalent for are left out: the case runs under our defaults, and if
    /// that changes the outcome it is a documented deviation (or listed as not replayed).
    /// Where Gunicorn's default differs from ours (<see cref="GunicornDefaults"/>), a case that does
    /// not set the setting runs under Gunicorn's default, which is what its expectation assumes.
    /// </summary>
    private static (string Toml, string Note) MapSettings(JsonElement? settings)
    {
        var toml = new List<string>();
        var unmapped = new List<string>();
        var given = settings?.EnumerateObject().ToList() ?? [];
        foreach (var (key, line) in GunicornDefaults)
            if (!given.Any(p => p.Name == key)) toml.Add(line);
        foreach (var p in given)
        {
            string? line = p.Name switch
            {
                "limit_request_line" => $"limit_request_line = {Math.Min(p.Value.GetInt32(), 8190)}",
                "limit_request_fields" => $"limit_request_fields = {p.Value.GetInt32()}",
                "limit_request_field_size" => $"limit_request_field_size = {(p.Value.GetInt32() == 0 ? 8190 : p.Value.GetInt32())}",
                "forwarded_allow_ips" => $"forwarded_allow_ips = [{string.Join(", ", p.Value.GetString()!.Split(',').Select(ip => $"\"{ip.Trim()}\""))}]",
                "proxy_protocol" => $"proxy_protocol = {(p.Value.GetBoolean() ? "true" : "false")}",
                _ => null,
            };
            if (line is null) unmapped.Add($"{p.Name} = {p.Value.GetRawText()}");
            else if (!IsOurDefault(line)) toml.Add(line);
        }
        toml.Sort(StringComparer.Ordinal);
        return (string.Join("\n", toml), unmapped.Count == 0 ? "" : "no equivalent for " + string.Join(", ", unmapped));
    }

    private static bool IsOurDefault(string tomlLine)
    {
        var config = ConfigLoader.Parse(tomlLine, null);
        var key = tomlLine[..tomlLine.IndexOf(' ')];
        return ConfigLoader.FormatToml(config[key]) == Settings.Find(key)!.DefaultAsToml;
    }

    /// <summary>
    /// The case with "Host: conformance.test" added to each HTTP/1.1 request that lacks one (null when
    /// none does). HTTP/1.1 requires Host and we enforce it, so this variant is what shows whether a
    /// Host-less case is otherwise accepted as expected, or rejected for the reason the corpus names.
    /// </summary>
    public CorpusCase? WithHost()
    {
        var text = Encoding.Latin1.GetString(Bytes);
        var expected = Expected.ToList();
        bool changed = false;
        if (Valid)
        {
            int from = 0;
            for (int i = 0; i < expected.Count; i++)
            {
                var r = expected[i];
                var line = $"{r.Method} {r.Target} {r.Protocol}\r\n";
                int at = text.IndexOf(line, from, StringComparison.Ordinal);
                if (at < 0) return null;
                from = at + line.Length;
                if (r.Protocol != "HTTP/1.1" || r.Headers.Any(h => h.Name.Equals("Host", StringComparison.OrdinalIgnoreCase))) continue;
                text = text.Insert(from, $"Host: {AddedHost}\r\n");
                expected[i] = r with { Headers = [("HOST", AddedHost), .. r.Headers] };
                changed = true;
            }
        }
        else
        {
            int lineEnd = text.IndexOf("\r\n", StringComparison.Ordinal);
            int headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (lineEnd > 0 && text[..lineEnd].EndsWith(" HTTP/1.1", StringComparison.Ordinal)
                && !text[..(headEnd < 0 ? text.Length : headEnd)].Contains("\r\nhost:", StringComparison.OrdinalIgnoreCase))
            {
                text = text.Insert(lineEnd + 2, $"Host: {AddedHost}\r\n");
                changed = true;
            }
        }
        if (!changed) return null;
        return new CorpusCase
        {
            Name = Name + " (with Host)", Valid = Valid, Bytes = Encoding.Latin1.GetBytes(text), Expected = expected,
            GunicornError = GunicornError, Toml = Toml, SettingsNote = SettingsNote,
        };
    }

    /// <summary>Gunicorn's error → the HttpError names that mean the same to us ("Incomplete": the bytes ended mid-message).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> SameErrorAs = new Dictionary<string, string[]>
    {
        ["NoMoreData"] = ["Incomplete"],
        ["ChunkMissingTerminator"] = ["Incomplete"],
        ["InvalidRequestLine"] = ["InvalidRequestLine", "InvalidTarget"],
        ["InvalidRequestMethod"] = ["InvalidMethod"],
        ["InvalidHTTPVersion"] = ["InvalidVersion", "UnsupportedVersion"],
        ["InvalidHeaderName"] = ["InvalidHeaderName", "ForbiddenTrailer"],
        ["InvalidHeader"] = ["InvalidHeader", "InvalidFraming", "UnsupportedTransferCoding"],
        ["LimitRequestLine"] = ["LimitRequestLine"],
        ["LimitRequestHeaders"] = ["LimitRequestFields", "LimitRequestFieldSize"],
        ["InvalidSchemeHeaders"] = ["InvalidSchemeHeaders"],
        ["InvalidChunkSize"] = ["InvalidChunk"],
        ["InvalidChunkExtension"] = ["InvalidChunk"],
        ["ObsoleteFolding"] = ["ObsoleteFolding"],
        ["InvalidProxyLine"] = ["InvalidProxyHeader"],
    };
}
