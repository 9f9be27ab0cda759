namespace Prefork.Tests.Conformance;

/// <summary>
/// conformance/DEVIATIONS.md, read by the tests: the corpus cases where we differ from Gunicorn on
/// purpose (with a kind, e.g. "missing-host"), and those not replayed at all. The tests assert that
/// exactly the listed cases deviate, so the list cannot grow unnoticed.
/// </summary>
public sealed class DeviationList
{
    public static readonly string FilePath = Path.Combine(AppContext.BaseDirectory, "conformance", "DEVIATIONS.md");

    /// <summary>Case name → kind of deviation (the second column).</summary>
    public Dictionary<string, string> Deviations { get; } = new();
    /// <summary>Case name → why it is not replayed.</summary>
    public Dictionary<string, string> NotReplayed { get; } = new();

    public static DeviationList Read()
    {
        var list = new DeviationList();
        Dictionary<string, string>? section = null;
        foreach (var line in File.ReadLines(FilePath))
        {
            if (line.StartsWith("## ", StringComparison.Ordinal))
                section = line.Contains("Deviations", StringComparison.OrdinalIgnoreCase) ? list.Deviations
                    : line.Contains("Not replayed", StringComparison.OrdinalIgnoreCase) ? list.NotReplayed : null;
            if (section is null || !line.StartsWith("| ", StringComparison.Ordinal)) continue;
            var cells = line.Split('|', StringSplitOptions.TrimEntries);
            var name = cells[1].Trim('`');
            if (!name.StartsWith("valid/", StringComparison.Ordinal) && !name.StartsWith("invalid/", StringComparison.Ordinal)) continue;
            if (!section.TryAdd(name, cells[2].Trim('`'))) throw new InvalidDataException($"{FilePath}: {name} is listed twice");
        }
        return list;
    }
}
