using System.Runtime.CompilerServices;

namespace Prefork.Tests.Support;

internal static class TestEnvironment
{
    /// <summary>
    /// Every process the tests start inherits DOTNET_EnableDiagnostics=0, so the .NET runtime in
    /// prefork masters and workers makes no clr-debug-pipe-*/dotnet-diagnostic-* entries in /tmp:
    /// those are removed on a clean exit only, and tests kill workers with SIGKILL. It also turns off
    /// dotnet-trace/dotnet-dump for those processes: fine for tests (set it here, not in production).
    /// </summary>
#pragma warning disable CA2255 // a test assembly, not a library: this must run before any test starts a process
    [ModuleInitializer]
    internal static void NoDiagnosticsPipesInChildren() => Environment.SetEnvironmentVariable("DOTNET_EnableDiagnostics", "0");
#pragma warning restore CA2255
}
