using System.Reflection;

namespace Prefork;

/// <summary>Facts about this build that the CLI and the master share.</summary>
public static class ServerInfo
{
    public static string Version { get; } =
        typeof(ServerInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>The hidden argument the master starts workers with.</summary>
    public const string WorkerFlag = "--worker";
}
