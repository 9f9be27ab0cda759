using System.Text.Json;
using System.Text.Json.Serialization;

namespace Prefork.Config;

/// <summary>
/// How the master hands its effective config to each worker (in an environment variable): JSON of every
/// validated value, typed by its setting, and the config file's path. JSON's escapes carry any string
/// (line breaks, quotes, control characters, NUL) and its output is ASCII, so the worker gets exactly
/// the values the master validated: from the file, the command line and the defaults alike.
/// </summary>
public static class ConfigHandOff
{
    private const string Source = "the configuration handed over by the master";

    public static string Write(GatewayConfig config) => JsonSerializer.Serialize(new HandOffPayload<object>(config.FilePath, config.Values.ToDictionary()), HandOffJson.Default.HandOffPayloadObject);

    /// <summary>The master's config, checked again; throws a <see cref="ConfigException"/> that says what is wrong.</summary>
    public static GatewayConfig Read(string? handOff)
    {
        if (string.IsNullOrEmpty(handOff)) throw new ConfigException($"{Source} is not set: workers are started by the prefork master");
        HandOffPayload<JsonElement> payload;
        try { payload = JsonSerializer.Deserialize(handOff, HandOffJson.Default.HandOffPayloadJsonElement) is { Values: not null } p ? p : throw new JsonException("no values"); }
        catch (JsonException e) { throw new ConfigException($"{Source} could not be read: {e.Message}"); }
        // A setting the master did not send keeps its default: only a worker newer than its master lacks one.
        var values = Settings.All.ToDictionary(s => s.Key, s => s.Default);
        foreach (var (key, element) in payload.Values)
        {
            var setting = Settings.Find(key) ?? throw new ConfigException(
                $"{Source} has setting '{key}', which this program does not know: the program changed on disk; restart the master (or send it USR2)");
            values[key] = ConfigLoader.Check(setting, FromJson(setting, element), Source);
        }
        return ConfigLoader.Create(values, payload.Path);
    }

    private static object FromJson(Setting s, JsonElement element)
    {
        try
        {
            object? value = s.Type switch
            {
                SettingType.Integer => element.Deserialize(HandOffJson.Default.Int64),
                SettingType.Number => element.Deserialize(HandOffJson.Default.Double),
                SettingType.Boolean => element.Deserialize(HandOffJson.Default.Boolean),
                SettingType.String => element.Deserialize(HandOffJson.Default.String),
                SettingType.StringList => element.Deserialize(HandOffJson.Default.StringArray) is { } list && !list.Contains(null) ? list : null,
                _ => null,
            };
            if (value is not null) return value;
        }
        catch (JsonException) { }
        throw new ConfigException($"{Source}: setting '{s.Key}' = {element.GetRawText()} is not allowed: expected {s.Allowed}");
    }
}

internal sealed record HandOffPayload<T>(string? Path, Dictionary<string, T> Values);

/// <summary>
/// The hand-off's JSON metadata, generated at build time (no reflection: trimming and NativeAOT allow it).
/// Written, a value is an object of its setting's type, each listed here.
/// </summary>
[JsonSerializable(typeof(HandOffPayload<object>))]
[JsonSerializable(typeof(HandOffPayload<JsonElement>))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(double))]
[JsonSerializable(typeof(bool))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(string[]))]
internal sealed partial class HandOffJson : JsonSerializerContext;
