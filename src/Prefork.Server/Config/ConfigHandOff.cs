using System.Text;
using System.Text.Json;

namespace Prefork.Config;

/// <summary>
/// How the master hands its effective config to each worker (in an environment variable): JSON of every
/// validated value, typed by its setting, and the config file's path:
/// <c>{"Path":"/etc/app/gateway.toml","Values":{"workers":4,"bind":["127.0.0.1:8000"],…}}</c>.
/// JSON's escapes carry any string (line breaks, quotes, control characters, NUL) and its output is ASCII,
/// so the worker gets exactly the values the master validated: from the file, the command line and the defaults alike.
/// Written and read with <see cref="Utf8JsonWriter"/> and <see cref="JsonDocument"/>, not the serializer: its
/// metadata is built at first use with reflection, a few ms of every NativeAOT worker's start (bench/aot.sh).
/// </summary>
public static class ConfigHandOff
{
    private const string Source = "the configuration handed over by the master";

    public static string Write(GatewayConfig config)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("Path", config.FilePath);
            json.WriteStartObject("Values");
            foreach (var (key, value) in config.Values)
            {
                json.WritePropertyName(key);
                switch (value)
                {
                    case long l: json.WriteNumberValue(l); break;
                    case double d: json.WriteNumberValue(d); break;
                    case bool b: json.WriteBooleanValue(b); break;
                    case string s: json.WriteStringValue(s); break;
                    case string[] list:
                        json.WriteStartArray();
                        foreach (var item in list) json.WriteStringValue(item);
                        json.WriteEndArray();
                        break;
                    default: throw new InvalidOperationException($"setting '{key}' holds a {value.GetType().Name}");
                }
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>The master's config, checked again; throws a <see cref="ConfigException"/> that says what is wrong.</summary>
    public static GatewayConfig Read(string? handOff)
    {
        if (string.IsNullOrEmpty(handOff)) throw new ConfigException($"{Source} is not set: workers are started by the prefork master");
        JsonDocument document;
        try { document = JsonDocument.Parse(handOff); }
        catch (JsonException e) { throw new ConfigException($"{Source} could not be read: {e.Message}"); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("Values", out var valuesElement) || valuesElement.ValueKind != JsonValueKind.Object)
                throw new ConfigException($"{Source} could not be read: no values");
            string? path = root.TryGetProperty("Path", out var pathElement) ? pathElement.ValueKind switch
            {
                JsonValueKind.String => pathElement.GetString(),
                JsonValueKind.Null => null,
                _ => throw new ConfigException($"{Source} could not be read: Path = {pathElement.GetRawText()} is not a string"),
            } : null;
            // A setting the master did not send keeps its default: only a worker newer than its master lacks one.
            var values = Settings.All.ToDictionary(s => s.Key, s => s.Default);
            foreach (var property in valuesElement.EnumerateObject())
            {
                var setting = Settings.Find(property.Name) ?? throw new ConfigException(
                    $"{Source} has setting '{property.Name}', which this program does not know: the program changed on disk; restart the master (or send it USR2)");
                values[property.Name] = ConfigLoader.Check(setting, FromJson(setting, property.Value), Source);
            }
            return ConfigLoader.Create(values, path);
        }
    }

    private static object FromJson(Setting s, JsonElement element)
    {
        object? value = (s.Type, element.ValueKind) switch
        {
            (SettingType.Integer, JsonValueKind.Number) => element.TryGetInt64(out var l) ? l : null,
            (SettingType.Number, JsonValueKind.Number) => element.TryGetDouble(out var d) ? d : null,
            (SettingType.Boolean, JsonValueKind.True or JsonValueKind.False) => element.GetBoolean(),
            (SettingType.String, JsonValueKind.String) => element.GetString(),
            (SettingType.StringList, JsonValueKind.Array) when element.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String)
                => element.EnumerateArray().Select(e => e.GetString()!).ToArray(),
            _ => null,
        };
        return value ?? throw new ConfigException($"{Source}: setting '{s.Key}' = {element.GetRawText()} is not allowed: expected {s.Allowed}");
    }
}
