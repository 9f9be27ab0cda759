using System.Text.Json;
using System.Text.Json.Serialization;
using Prefork.Protocol;

namespace Prefork.Config;

/// <summary>
/// How the master hands its effective config to each worker (in an environment variable): JSON of every
/// validated value, typed by its setting, and the config file's path. JSON's escapes carry any string
/// (line breaks, quotes, control characters, NUL) and its output is ASCII, so the worker gets exactly
/// the values the master validated: from the file, the command line and the defaults alike.
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
    public static string Write(GatewayConfig config) =>
        JsonSerializer.Serialize(new HandOffPayload<object>(config.FilePath, config.Values.Where(v => !IsSecret(v.Key)).ToDictionary()), HandOffJson.Default.HandOffPayloadObject);

    /// <summary>The secrets a worker of <paramref name="config"/> needs, as JSON; null when there are none.</summary>
    public static string? WriteSecrets(GatewayConfig config)
    {
        var secrets = new Dictionary<string, object>();
        if (config.KeyFilePassword is { } password) secrets[Settings.KeyFilePassword.Key] = password; // the setting's, or the master's $PREFORK_KEYFILE_PASSWORD
        return secrets.Count == 0 ? null : JsonSerializer.Serialize(new HandOffPayload<object>(null, secrets), HandOffJson.Default.HandOffPayloadObject);
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
        var payload = Parse(handOff, Source);
        // A setting the master did not send keeps its default: only a worker newer than its master lacks one.
        var values = Settings.All.ToDictionary(s => s.Key, s => s.Default);
        foreach (var (key, element) in payload.Values) values[key] = Take(key, element, secret: false);
        if (secrets is not null)
            foreach (var (key, element) in Parse(secrets, "the secrets handed over by the master").Values) values[key] = Take(key, element, secret: true);
        return ConfigLoader.Create(values, payload.Path);
    }

    private static bool IsSecret(string key) => SecretSettings.Any(s => s.Key == key);

    private static HandOffPayload<JsonElement> Parse(string json, string source)
    {
        try { return JsonSerializer.Deserialize(json, HandOffJson.Default.HandOffPayloadJsonElement) is { Values: not null } p ? p : throw new JsonException("no values"); }
        catch (JsonException e) { throw new ConfigException($"{source} could not be read: {e.Message}"); }
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
