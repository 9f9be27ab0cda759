using System.Diagnostics;
using System.Reflection;

namespace Prefork.Config;

/// <summary>Facts about this build that the CLI and the master share.</summary>
public static class ServerInfo
{
    public static string Version { get; } =
        typeof(ServerInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>The hidden argument the master starts workers with.</summary>
    public const string WorkerFlag = "--worker";

    /// <summary>This program, to be started again with <paramref name="args"/>: its apphost, or `dotnet prefork.dll`.</summary>
    public static ProcessStartInfo StartInfo(params string[] args)
    {
        var exe = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
        // Under the dotnet host the program is its main assembly, beside which the host found it (Assembly.Location
        // would not do: it is empty in a single-file or NativeAOT build, which always run as their own executable).
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet")
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, Assembly.GetEntryAssembly()!.GetName().Name + ".dll"));
        foreach (var arg in args) psi.ArgumentList.Add(arg);
        return psi;
    }
}
