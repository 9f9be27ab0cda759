using Microsoft.AspNetCore.Hosting;

[assembly: HostingStartup(typeof(Prefork.AspNetCore.PreforkHostingStartup))]

namespace Prefork.AspNetCore;

/// <summary>
/// UsePrefork() for an app that does not call it: ASP.NET Core runs this when
/// ASPNETCORE_HOSTINGSTARTUPASSEMBLIES names Prefork.AspNetCore (the <see cref="StartupHook"/> adds
/// that name and makes the assembly loadable into an app that does not reference it). Outside
/// Prefork it changes nothing, like UsePrefork; an app that also calls UsePrefork is configured once.
/// </summary>
public sealed class PreforkHostingStartup : IHostingStartup
{
    public void Configure(IWebHostBuilder builder) => builder.UsePrefork();
}
