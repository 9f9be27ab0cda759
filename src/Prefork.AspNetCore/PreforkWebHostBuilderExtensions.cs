using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Prefork.AspNetCore;

public static class PreforkWebHostBuilderExtensions
{
    /// <summary>Set once UsePrefork has configured a builder (by the app or by the hosting startup): it runs once.</summary>
    internal const string AppliedKey = "Prefork:Applied";

    /// <summary>
    /// Serves the app as a Prefork command worker when a Prefork master started this process, and changes
    /// nothing otherwise. Kestrel listens on the sockets the master passes (fd 3, 4, …) and on nothing
    /// else, with the master's backlog; the worker tells the master when it is ready, sends it a
    /// heartbeat every second (requests served, the oldest in flight), stops within the master's
    /// graceful_timeout, and stops when the master is gone.
    /// </summary>
    /// <param name="builder">The app's web host builder (<c>builder.WebHost</c>).</param>
    /// <param name="configure">Applied to each inherited listener, e.g. <c>o => o.UseHttps(cert)</c>.</param>
    public static IWebHostBuilder UsePrefork(this IWebHostBuilder builder, Action<ListenOptions>? configure = null)
    {
        if (builder.GetSetting(AppliedKey) == "true") return builder;
        var prefork = PreforkEnvironment.Read();
        if (prefork is null) return builder;
        builder.UseSetting(AppliedKey, "true");

        foreach (var (fd, _) in prefork.Listeners) NativeMethods.CloseOnExec(fd);
        // Only the inherited sockets: endpoints given in code make Kestrel ignore ASPNETCORE_URLS, --urls
        // and HTTP_PORTS (it logs a warning naming them), so no worker binds a port of its own.
        builder.ConfigureKestrel(kestrel =>
        {
            foreach (var (fd, _) in prefork.Listeners) kestrel.ListenHandle((ulong)fd, listen => configure?.Invoke(listen));
        });
        return builder.ConfigureServices(services =>
        {
            // Kestrel calls listen() again on each socket: with the master's backlog, not its own 512.
            services.Configure<SocketTransportOptions>(o => o.Backlog = prefork.Backlog);
            if (prefork.GracefulTimeout is { } graceful) services.Configure<HostOptions>(o => o.ShutdownTimeout = graceful);
            services.AddSingleton(prefork);
            services.AddSingleton<RequestTracker>();
            services.AddSingleton<IStartupFilter, RequestTrackingStartupFilter>();
            services.AddHostedService<MasterLink>();
        });
    }
}
