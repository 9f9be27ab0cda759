using System.Globalization;
using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Serialization;

namespace Prefork.Config;

/// <summary>
/// Builds a <see cref="GatewayConfig"/>: defaults, then the TOML file, then command-line overrides.
/// Every value is checked against its <see cref="Setting"/>; the first bad one throws a
/// <see cref="ConfigException"/> that names the key, the value and what is allowed.
/// </summary>
public static class ConfigLoader
{
    /// <summary>Loads <paramref name="path"/> (null: defaults only) and applies <paramref name="overrides"/> (key → raw text).</summary>
    public static GatewayConfig Load(string? path, IEnumerable<KeyValuePair<string, string>>? overrides = null)
    {
        if (path is not null && !File.Exists(path)) throw new ConfigException($"config file '{path}' does not exist");
        return Parse(path is null ? null : File.ReadAllText(path), path, overrides);
    }

    /// <summary>Parses TOML text; <paramref name="path"/> names it in errors and anchors relative paths.</summary>
    public static GatewayConfig Parse(string? text, string? path, IEnumerable<KeyValuePair<string, string>>? overrides = null)
    {
        var values = Settings.All.ToDictionary(s => s.Key, s => s.Default);
        if (text is not null)
        {
            TomlTable table;
            try { table = TomlSerializer.Deserialize(text, TomlModelContext.Default.TomlTable)!; }
            catch (TomlException e) { throw new ConfigException($"{path ?? "config"}: not valid TOML: {e.Message}"); }
            foreach (var (key, raw) in table)
            {
                var setting = Settings.Find(key) ?? throw new ConfigException(
                    $"{path ?? "config"}: unknown setting '{key}'{Suggest(key)}; see `prefork --help` for every setting");
                values[key] = FromToml(setting, raw, path ?? "config");
            }
        }
        var listOverrides = new Dictionary<string, List<string>>();
        foreach (var (key, rawText) in overrides ?? [])
        {
            var setting = Settings.Find(key) ?? throw new ConfigException($"unknown setting '{key}'");
            if (setting.Type == SettingType.StringList)
            {
                // Repeated flags (-b a -b b) build one list that replaces the file's.
                if (!listOverrides.TryGetValue(key, out var list)) listOverrides[key] = list = [];
                list.Add(rawText);
                values[key] = Check(setting, list.ToArray(), "command line");
            }
            else values[key] = FromText(setting, rawText);
        }
        return Create(values, path);
    }

    /// <summary>The config of checked values, once the checks that span settings pass.</summary>
    internal static GatewayConfig Create(Dictionary<string, object> values, string? path)
    {
        var config = new GatewayConfig(values, path);
        var (bind, names) = (config.Get(Settings.Bind), config.Get(Settings.ListenFdNames));
        if (bind.Count == 0) throw new ConfigException($"setting '{Settings.Bind.Key}' = [] is not allowed: expected at least one address");
        if (names.Count > bind.Count)
            throw new ConfigException($"setting '{Settings.ListenFdNames.Key}' has {names.Count} names for {bind.Count} bind addresses: expected at most one name per bind, in bind order");
        return config;
    }

    private static object FromToml(Setting s, object? raw, string where)
    {
        object? value = (s.Type, raw) switch
        {
            (SettingType.Integer, long l) => l,
            (SettingType.Number, long l) => (double)l,
            (SettingType.Number, double d) => d,
            (SettingType.Boolean, bool b) => b,
            (SettingType.String, string str) => str,
            (SettingType.StringList, string str) => new[] { str },
            (SettingType.StringList, TomlArray arr) when arr.All(x => x is string) => arr.Cast<string>().ToArray(),
            _ => null,
        };
        if (value is null)
            throw new ConfigException($"{where}: setting '{s.Key}' = {Describe(raw)} is not allowed: expected {s.Allowed}");
        return Check(s, value, where);
    }

    private static object FromText(Setting s, string text)
    {
        object? value = s.Type switch
        {
            SettingType.Integer => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) ? l : null,
            SettingType.Number => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null,
            SettingType.Boolean => bool.TryParse(text, out var b) ? b : null,
            SettingType.String => text,
            SettingType.StringList => new[] { text },
            _ => null,
        };
        if (value is null)
            throw new ConfigException($"command line: {Settings.LongFlag(s)} '{text}' is not allowed for setting '{s.Key}': expected {s.Allowed}");
        return Check(s, value, "command line");
    }

    internal static object Check(Setting s, object value, string where)
    {
        if (s.Form is { } form)
            foreach (var item in value as string[] ?? [(string)value])
                if (form.Problem(item) is { } why)
                    throw new ConfigException($"{where}: setting '{s.Key}' = {Describe(item)} is not allowed: {why}");
        bool ok = value switch
        {
            long l => l >= s.Min && l <= s.Max,
            double d => d >= s.Min && d <= s.Max,
            string str => s.Choices is null || s.Choices.Contains(str),
            _ => true,
        };
        if (!ok) throw new ConfigException($"{where}: setting '{s.Key}' = {Describe(value)} is not allowed: expected {s.Allowed}");
        return value;
    }

    private static string Suggest(string key)
    {
        var near = Settings.All.Select(s => s.Key).FirstOrDefault(k => Distance(k, key) <= 2 || k.Replace("_", "") == key.Replace("_", "").Replace("-", ""));
        return near is null ? "" : $" (did you mean '{near}'?)";
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    private static string Describe(object? raw) => raw switch
    {
        null => "(nothing)",
        string s => $"\"{s}\"",
        TomlArray a => "[" + string.Join(", ", a.Select(Describe)) + "]",
        TomlTable => "(a table)",
        bool b => b ? "true" : "false",
        _ => Convert.ToString(raw, CultureInfo.InvariantCulture) ?? "?",
    };

    /// <summary>Writes a setting's value as TOML.</summary>
    public static string FormatToml(object value) => value switch
    {
        string s => Quote(s),
        string[] list => "[" + string.Join(", ", list.Select(Quote)) + "]",
        bool b => b ? "true" : "false",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture)!,
    };

    /// <summary>A TOML basic string: quotes, backslashes and control characters escaped, so any value reads back the same.</summary>
    private static string Quote(string s)
    {
        var sb = new System.Text.StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s)
        {
            if (c is '"' or '\\') sb.Append('\\').Append(c);
            else if (char.IsControl(c)) sb.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", _ => $"\\u{(int)c:X4}" });
            else sb.Append(c);
        }
        return sb.Append('"').ToString();
    }
}

/// <summary>
/// Tomlyn's metadata for its untyped model, generated at build time: a config is read as a plain
/// <see cref="TomlTable"/> without the reflection-based mapping, which trimming and NativeAOT forbid.
/// </summary>
[TomlSerializable(typeof(TomlTable))]
internal sealed partial class TomlModelContext : TomlSerializerContext;
