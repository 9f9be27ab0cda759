namespace Prefork.Config;

/// <summary>The kinds of value a setting takes; each knows how to check a TOML value.</summary>
public enum SettingType { Integer, Number, Boolean, String, StringList }

/// <summary>Which workers a setting applies to: gateway workers (the built-in HTTP engine), command workers (`command`), or both.</summary>
public enum AppliesTo { All, Gateway, Command }

/// <summary>
/// The form a string setting's value (or each item of a list) must have beyond its type: in words
/// for the docs, and a check that returns what is wrong with a value (null when it is fine).
/// </summary>
public sealed record ValueForm(string Expected, Func<string, string?> Problem)
{
    public static ValueForm Of(string expected, Func<string, bool> isValid) => new(expected, v => isValid(v) ? null : "expected " + expected);
}

/// <summary>
/// One setting, declared once: its TOML key, type, default, allowed range, CLI flag and
/// documentation. The loader, <c>--print-config</c>, <c>--help</c> and the README's table all
/// come from these declarations (see <see cref="Settings.All"/>).
/// </summary>
public sealed record Setting(
    string Key,
    SettingType Type,
    object Default,
    string Section,
    string Doc,
    string? Flag = null,
    string? ShortFlag = null,
    long Min = long.MinValue,
    long Max = long.MaxValue,
    string[]? Choices = null,
    bool Reloadable = true,
    ValueForm? Form = null,
    AppliesTo Applies = AppliesTo.All)
{
    /// <summary>What values are allowed, in words, for error messages and the docs.</summary>
    public string Allowed => Type switch
    {
        SettingType.Integer when Min != long.MinValue && Max != long.MaxValue => $"an integer from {Min} to {Max}",
        SettingType.Integer when Min != long.MinValue => $"an integer >= {Min}",
        SettingType.Integer => "an integer",
        SettingType.Number when Min != long.MinValue => $"a number >= {Min}",
        SettingType.Number => "a number",
        SettingType.Boolean => "true or false",
        SettingType.String when Choices is not null => "one of " + string.Join(", ", Choices.Select(c => $"\"{c}\"")),
        SettingType.String when Form is not null => Form.Expected,
        SettingType.String => "a string",
        SettingType.StringList when Form is not null => $"a list of {Form.Expected} (or one)",
        SettingType.StringList => "a list of strings (or one string)",
        _ => "?",
    };

    /// <summary>The note --help, the manual and the README add to the setting's doc.</summary>
    public string AppliesNote => Applies switch
    {
        AppliesTo.Gateway => "Gateway workers only (not with `command`).",
        AppliesTo.Command => "Command workers only.",
        _ => "",
    };

    /// <summary>The default as TOML would write it.</summary>
    public string DefaultAsToml => ConfigLoader.FormatToml(Default);
}
