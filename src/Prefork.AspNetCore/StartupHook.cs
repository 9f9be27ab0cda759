/// <summary>
/// Lets the Prefork master run an unmodified ASP.NET Core app as command workers:
/// DOTNET_STARTUP_HOOKS=/path/to/Prefork.AspNetCore.dll makes the runtime load this assembly into the
/// app's (default) load context and call <see cref="Initialize"/> before the app's Main. Initialize
/// names the assembly in ASPNETCORE_HOSTINGSTARTUPASSEMBLIES, so the app's host loads it by name (and
/// finds it already loaded, though the app's deps.json does not list it) and runs
/// <see cref="Prefork.AspNetCore.PreforkHostingStartup"/>. The runtime requires this class name, in no namespace.
/// </summary>
internal static class StartupHook
{
    public const string HostingStartupAssemblies = "ASPNETCORE_HOSTINGSTARTUPASSEMBLIES";

    public static void Initialize()
    {
        var name = typeof(StartupHook).Assembly.GetName().Name!;
        var assemblies = Environment.GetEnvironmentVariable(HostingStartupAssemblies);
        if (assemblies?.Split(';', StringSplitOptions.TrimEntries).Contains(name) != true)
            Environment.SetEnvironmentVariable(HostingStartupAssemblies, string.IsNullOrEmpty(assemblies) ? name : $"{assemblies};{name}");
    }
}
