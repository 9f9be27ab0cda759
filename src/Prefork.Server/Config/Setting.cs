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
/// come from these declarations (see <see cref="Settings.All"/>); <see cref="Setting{T}"/> adds the
/// typed read, <c>config.Get(Settings.Workers)</c>.
/// </summary>
public abstract class Setting
{
    private protected Setting(string key, SettingType type, object @default, string section, string doc, string? flag, string? shortFlag,
        long min, long max, string[]? choices, bool reloadable, ValueForm? form, AppliesTo applies)
    {
        (Key, Type, Default, Section, Doc, Flag, ShortFlag) = (key, type, @default, section, doc, flag, shortFlag);
        (Min, Max, Choices, Reloadable, Form, Applies) = (min, max, choices, reloadable, form, applies);
    }

    public string Key { get; }
    public SettingType Type { get; }
    /// <summary>The default as the config stores it (long, double, bool, string or string[]).</summary>
    public object Default { get; }
    public string Section { get; }
    public string Doc { get; }
    public string? Flag { get; }
    public string? ShortFlag { get; }
    public long Min { get; }
    public long Max { get; }
    public string[]? Choices { get; }
    public bool Reloadable { get; }
    public ValueForm? Form { get; }
    public AppliesTo Applies { get; }

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

/// <summary>
/// A setting whose value a config hands out as <typeparamref name="T"/>: int or long (an Integer, stored as
/// long, an int's range checked to fit), double (Number), bool, string, or IReadOnlyList&lt;string&gt; (StringList).
/// </summary>
public sealed class Setting<T> : Setting
{
    public Setting(string Key, T Default, string Section, string Doc, string? Flag = null, string? ShortFlag = null,
        long Min = long.MinValue, long Max = long.MaxValue, string[]? Choices = null, bool Reloadable = true,
        ValueForm? Form = null, AppliesTo Applies = AppliesTo.All)
        : base(Key, TypeOf(Key), Stored(Default), Section, Doc, Flag, ShortFlag, Min, Max, Choices, Reloadable, Form, Applies)
    {
        if (typeof(T) == typeof(int) && (Min < int.MinValue || Max > int.MaxValue))
            throw new ArgumentException($"setting '{Key}' is read as an int, so its range must fit one");
    }

    /// <summary>The value stored for this setting (checked against it by the loader), as <typeparamref name="T"/>.</summary>
    internal T Read(object stored) => typeof(T) == typeof(int) ? (T)(object)checked((int)(long)stored) : (T)stored;

    private static SettingType TypeOf(string key) =>
        typeof(T) == typeof(int) || typeof(T) == typeof(long) ? SettingType.Integer
        : typeof(T) == typeof(double) ? SettingType.Number
        : typeof(T) == typeof(bool) ? SettingType.Boolean
        : typeof(T) == typeof(string) ? SettingType.String
        : typeof(T) == typeof(IReadOnlyList<string>) ? SettingType.StringList
        : throw new ArgumentException($"setting '{key}': no setting type reads as {typeof(T).Name}");

    private static object Stored(T value) => value switch
    {
        int i => (long)i,
        IReadOnlyList<string> list => list.ToArray(),
        _ => value!,
    };
}
