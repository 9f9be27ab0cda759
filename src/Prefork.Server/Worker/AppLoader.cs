using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.Loader;
using Prefork.Config;
using Prefork.Gateway;

namespace Prefork.Worker;

/// <summary>
/// Loads the application named by `app = "ASSEMBLY:TYPE"`, as `gunicorn module:app` imports a
/// callable. The assembly is loaded from disk at every worker boot, so a reload picks up a new build.
/// Reflection by name: a trimmed or NativeAOT executable links its app in instead (<see cref="PreforkHost"/>).
/// </summary>
public static class AppLoader
{
    internal const string ByName = "loads the application named by `app` from its assembly by reflection; a trimmed or NativeAOT executable links its application in instead (PreforkHost.Run)";

    /// <summary>The application: an <see cref="IGatewayApplication"/>, an <see cref="IAsyncGatewayApplication"/>, or both.</summary>
    [RequiresUnreferencedCode(ByName)]
    public static object Load(GatewayConfig config)
    {
        var spec = config.Get(Settings.App);
        int colon = spec.LastIndexOf(':');
        if (colon <= 0 || colon == spec.Length - 1)
            throw new AppLoadException($"app = \"{spec}\": expected ASSEMBLY:TYPE, e.g. \"MyApp:MyApp.Application\" or \"bin/MyApp.dll:MyApp.Application\"");
        var assemblyPart = spec[..colon];
        var typeName = spec[(colon + 1)..];
        var path = FindAssembly(assemblyPart, config);

        var resolver = new AssemblyDependencyResolver(path);
        AssemblyLoadContext.Default.Resolving += (context, name) =>
            resolver.ResolveAssemblyToPath(name) is { } dep ? context.LoadFromAssemblyPath(dep) : null;
        var assembly = AssemblyLoadContext.Default.LoadFromAssemblyPath(path);

        var type = assembly.GetType(typeName, throwOnError: false)
            ?? throw new AppLoadException($"app = \"{spec}\": type '{typeName}' not found in {path}" + Nearby(assembly));
        if (!IsApplication(type))
            throw new AppLoadException($"app = \"{spec}\": {typeName} implements neither Prefork.Gateway.IGatewayApplication nor Prefork.Gateway.IAsyncGatewayApplication");
        try
        {
            return Activator.CreateInstance(type)!;
        }
        catch (TargetInvocationException e)
        {
            throw new AppLoadException($"app = \"{spec}\": the constructor of {typeName} threw: {e.InnerException}");
        }
        catch (MissingMethodException)
        {
            throw new AppLoadException($"app = \"{spec}\": {typeName} needs a public parameterless constructor");
        }
    }

    /// <summary>A path to a .dll, or an assembly name searched for in app_path, the config's folder and prefork's own.</summary>
    internal static string FindAssembly(string name, GatewayConfig config)
    {
        if (name.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) || name.Contains('/'))
        {
            var full = Path.GetFullPath(name, config.BaseDirectory);
            return File.Exists(full) ? full : throw new AppLoadException($"app assembly {full} does not exist");
        }
        var folders = config.Get(Settings.AppPath).Select(p => Path.GetFullPath(p, config.BaseDirectory))
            .Append(config.BaseDirectory).Append(AppContext.BaseDirectory).ToList();
        foreach (var folder in folders)
        {
            var candidate = Path.Combine(folder, name + ".dll");
            if (File.Exists(candidate)) return candidate;
        }
        throw new AppLoadException($"app assembly '{name}.dll' not found in: {string.Join(", ", folders)} (set app_path, or give a path to the .dll)");
    }

    private static bool IsApplication(Type type) =>
        typeof(IGatewayApplication).IsAssignableFrom(type) || typeof(IAsyncGatewayApplication).IsAssignableFrom(type);

    [RequiresUnreferencedCode(ByName)]
    private static string Nearby(Assembly assembly)
    {
        var apps = assembly.GetExportedTypes().Where(t => IsApplication(t) && !t.IsAbstract).Select(t => t.FullName).ToList();
        return apps.Count == 0 ? "" : $"; it has: {string.Join(", ", apps)}";
    }
}

public sealed class AppLoadException(string message) : Exception(message);
