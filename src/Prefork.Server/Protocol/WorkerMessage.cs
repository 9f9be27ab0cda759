using System.Globalization;
using System.Text;

namespace Prefork.Protocol;

/// <summary>
/// The words a worker says to its master, one line each on its pipe (Puma's habit), each shorter
/// than PIPE_BUF so a write is atomic. Both ends use this one definition:
///   ready                                                     app loaded, accepting
///   heartbeat requests=12 busy_ms=340 [COUNTS] method=GET path=/slow   once a second; busy_ms is -1 (and no method/path) when idle
///     COUNTS: active=N conns=N body_bytes=N rejected_tls=N rejected_proxy=N d.GET.2xx=SUM_US/B0,B1,...  (see <see cref="RequestCounts"/>)
///   bootfail REASON                                           the worker cannot boot (config, app, start-up), then it exits
/// Heartbeat fields are named so they can grow: unknown keys are ignored, so a worker newer than its
/// master (HUP after the program on disk changed) still works. Values are percent-encoded where
/// they hold a space, '=', '%' or a control character.
/// </summary>
public abstract record WorkerMessage
{
    /// <summary>Longest boot failure reason sent (the rest is in the worker's log).</summary>
    public const int MaxReasonLength = 500;
    /// <summary>Longest request path sent in a heartbeat, before encoding.</summary>
    public const int MaxPathLength = 200;
    /// <summary>A line's limit in bytes, newline included: under PIPE_BUF (4096), so each write is atomic.</summary>
    public const int MaxLineBytes = 4000;
    /// <summary>What a heartbeat's counts may take: the line's limit less room for the rest (a 200-character path is at most 600 bytes encoded).</summary>
    public const int CountsBudget = 3000;

    public sealed record Ready : WorkerMessage;
    /// <summary>
    /// BusyMs: how long its oldest in-flight request has run, -1 when idle (then Method and Path are "").
    /// Counts: its per-request counts (null from workers that send none); when they do not all fit,
    /// the series from <paramref name="CountsFrom"/> on go first (the rest in a later heartbeat).
    /// </summary>
    public sealed record Heartbeat(long Requests, long BusyMs, string Method = "", string Path = "", RequestCounts? Counts = null, int CountsFrom = 0) : WorkerMessage
    {
        /// <summary>The series the next heartbeat's counts should start from (all that did not fit in this one).</summary>
        public int NextCountsFrom() => Counts?.AppendFields(new StringBuilder(), CountsFrom, CountsBudget) ?? 0;

        internal string CountFields()
        {
            if (Counts is null) return "";
            var sb = new StringBuilder();
            Counts.AppendFields(sb, CountsFrom, CountsBudget);
            return sb.ToString();
        }
    }
    public sealed record BootFailure(string Reason) : WorkerMessage;

    public string Format() => this switch
    {
        Ready => "ready",
        Heartbeat { BusyMs: < 0 } h => $"heartbeat requests={h.Requests} busy_ms=-1{h.CountFields()}",
        Heartbeat h => $"heartbeat requests={h.Requests} busy_ms={h.BusyMs}{h.CountFields()} method={Encode(h.Method, 32)} path={Encode(h.Path, MaxPathLength)}",
        BootFailure f => "bootfail " + OneLine(f.Reason).TrimEnd('.'), // the master's log line goes on after it
        _ => throw new InvalidOperationException(GetType().Name),
    };

    /// <summary>Reads one line; null for a line that is no message this master knows (the worker was heard all the same).</summary>
    public static WorkerMessage? TryParse(string line)
    {
        int space = line.IndexOf(' ');
        var word = space < 0 ? line : line[..space];
        var rest = space < 0 ? "" : line[(space + 1)..];
        return word switch
        {
            "ready" => new Ready(),
            "heartbeat" => ParseHeartbeat(rest),
            "bootfail" => new BootFailure(rest.Length > 0 ? OneLine(rest) : "unknown"),
            "ping" => ParseLegacyPing(rest),
            _ => null,
        };
    }

    private static Heartbeat? ParseHeartbeat(string fields)
    {
        long? requests = null, busyMs = null;
        string method = "", path = "";
        RequestCounts? counts = null;
        foreach (var field in fields.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = field.IndexOf('=');
            if (eq <= 0) continue;
            var value = field[(eq + 1)..];
            switch (field[..eq])
            {
                case "requests": requests = Number(value); break;
                case "busy_ms": busyMs = Number(value); break;
                case "method": method = Decode(value); break;
                case "path": path = Decode(value); break;
                default:
                    var candidate = counts ?? new RequestCounts();
                    if (candidate.TryTakeField(field[..eq], value)) counts = candidate; // else a key of a newer worker: ignored
                    break;
            }
        }
        if (requests is not { } r || busyMs is not { } b) return null;
        return b < 0 ? new Heartbeat(r, -1, Counts: counts) : new Heartbeat(r, b, method, path, counts);
    }

    /// <summary>
    /// `ping REQUESTS BUSY_MS METHOD PATH`: what workers of the previous program say, adopted after an
    /// in-place upgrade (USR2) until their replacements are ready.
    /// </summary>
    private static Heartbeat? ParseLegacyPing(string rest)
    {
        var parts = rest.Split(' ', 4);
        if (parts.Length != 4 || Number(parts[0]) is not { } requests || Number(parts[1]) is not { } busyMs) return null;
        return busyMs < 0 ? new Heartbeat(requests, -1) : new Heartbeat(requests, busyMs, Clean(parts[2], 32), Clean(parts[3], MaxPathLength));
    }

    private static long? Number(string text) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>Bounds the text, then percent-encodes what would end a field or a line.</summary>
    public static string Encode(string text, int maxLength)
    {
        var sb = new StringBuilder(Math.Min(text.Length, maxLength) + 8);
        foreach (var c in text.Length > maxLength ? text[..maxLength] : text)
        {
            if (char.IsControl(c) || c is ' ' or '%' or '=') sb.Append('%').Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>Undoes <see cref="Encode"/>; a malformed escape stays as it is. Control characters come out as '?', for the log.</summary>
    public static string Decode(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '%' && i + 2 < text.Length &&
                int.TryParse(text.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var code))
            {
                sb.Append((char)code);
                i += 2;
            }
            else sb.Append(text[i]);
        }
        return Clean(sb.ToString(), int.MaxValue);
    }

    /// <summary>Makes text (an exception's message) one line: line breaks shown as " | ", other control characters as '?', bounded.</summary>
    public static string OneLine(string text) => Clean(text.ReplaceLineEndings(" | "), MaxReasonLength);

    private static string Clean(string text, int maxLength)
    {
        var sb = new StringBuilder(Math.Min(text.Length, maxLength));
        foreach (var c in text.Length > maxLength ? text[..maxLength] : text) sb.Append(char.IsControl(c) ? '?' : c);
        return sb.ToString();
    }
}
