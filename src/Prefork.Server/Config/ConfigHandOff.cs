using System.Text;
using System.Text.Json;
using Prefork.Protocol;

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
/// <remarks>
/// Secrets (keyfile_password, or $PREFORK_KEYFILE_PASSWORD in its place) are left out of that
/// variable: a process's environment stays readable for its whole life (/proc/PID/environ, `ps e`).
/// The master writes them (<see cref="WriteSecrets"/>) into a pipe the worker inherits
/// (<see cref="WorkerEnvironment.EnvSecretsFd"/>); the worker reads it once at boot and closes it
/// (<see cref="TakeSecrets"/>), so the secret lives only in its memory.
/// </remarks>
public static class ConfigHandOff
{
    /// <summary>Where the master's own secret may come from instead of the config; not passed on in workers' environments.</summary>
    public const string EnvKeyFilePassword = "PREFORK_KEYFILE_PASSWORD";

    private const string Source = "the configuration handed over by the master";
    private static readonly Setting[] SecretSettings = [Settings.KeyFilePassword];

    /// <summary>Every value but the secrets (which keep their defaults here).</summary>
    public static string Write(GatewayConfig config) => WritePayload(config.FilePath, config.Values.Where(v => !IsSecret(v.Key)));

    private static string WritePayload(string? path, IEnumerable<KeyValuePair<string, object>> values)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("Path", path);
            json.WriteStartObject("Values");
            foreach (var (key, value) in values)
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

    /// <summary>The secrets a worker of <paramref name="config"/> needs, as JSON; null when there are none.</summary>
    public static string? WriteSecrets(GatewayConfig config)
    {
        // the setting's, or the master's $PREFORK_KEYFILE_PASSWORD
        return config.KeyFilePassword is { } password ? WritePayload(null, [new(Settings.KeyFilePassword.Key, password)]) : null;
    }

    /// <summary>
    /// A worker, at boot: reads its secrets from the fd named by <see cref="WorkerEnvironment.EnvSecretsFd"/> and closes
    /// it; null when the master passed none.
    /// </summary>
    public static string? TakeSecrets()
    {
        if (Environment.GetEnvironmentVariable(WorkerEnvironment.EnvSecretsFd) is not { Length: > 0 } text) return null;
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int fd))
            throw new ConfigException($"{WorkerEnvironment.EnvSecretsFd} = \"{text}\" is not a file descriptor: workers are started by the prefork master");
        Environment.SetEnvironmentVariable(WorkerEnvironment.EnvSecretsFd, null); // not handed on to processes this one starts
        try
        {
            using var pipe = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
            using var reader = new StreamReader(pipe);
            return reader.ReadToEnd(); // the master wrote them all and closed its end before starting us
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new ConfigException($"the secrets handed over by the master (fd {fd}) could not be read: {e.Message}");
        }
    }

    /// <summary>The master's config, checked again, with its secrets; throws a <see cref="ConfigException"/> that says what is wrong.</summary>
    public static GatewayConfig Read(string? handOff, string? secrets = null)
    {
        if (string.IsNullOrEmpty(handOff)) throw new ConfigException($"{Source} is not set: workers are started by the prefork master");
        // A setting the master did not send keeps its default: only a worker newer than its master lacks one.
        var values = Settings.All.ToDictionary(s => s.Key, s => s.Default);
        var path = ReadPayload(handOff, Source, values, secret: false);
        if (secrets is not null) ReadPayload(secrets, "the secrets handed over by the master", values, secret: true);
        return ConfigLoader.Create(values, path);
    }

    private static bool IsSecret(string key) => SecretSettings.Any(s => s.Key == key);

    /// <summary>Checks every value of one payload into <paramref name="values"/>; returns its config path.</summary>
    private static string? ReadPayload(string json, string source, Dictionary<string, object> values, bool secret)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new ConfigException($"{source} could not be read: {e.Message}"); }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("Values", out var valuesElement) || valuesElement.ValueKind != JsonValueKind.Object)
                throw new ConfigException($"{source} could not be read: no values");
            string? path = root.TryGetProperty("Path", out var pathElement) ? pathElement.ValueKind switch
            {
                JsonValueKind.String => pathElement.GetString(),
                JsonValueKind.Null => null,
                _ => throw new ConfigException($"{source} could not be read: Path = {pathElement.GetRawText()} is not a string"),
            } : null;
            foreach (var property in valuesElement.EnumerateObject()) values[property.Name] = Take(property.Name, property.Value, secret);
            return path;
        }
    }

    private static object Take(string key, JsonElement element, bool secret)
    {
        var setting = Settings.Find(key) ?? throw new ConfigException(
            $"{Source} has setting '{key}', which this program does not know: the program changed on disk; restart the master (or send it USR2)");
        if (IsSecret(key) != secret) throw new ConfigException($"{Source}: setting '{key}' came by the wrong way ({(secret ? "not a secret" : "a secret in the environment")})");
        return ConfigLoader.Check(setting, FromJson(setting, element), Source);
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
