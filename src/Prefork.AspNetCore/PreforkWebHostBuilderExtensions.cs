using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Prefork.AspNetCore;

public static class PreforkWebHostBuilderExtensions
{
    /// <summary>Set once UsePrefork has configured a builder (by the app or by <see cref="PreforkHostingStartup"/>): it runs once.</summary>
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
        var prefork = PreforkEnvironment.Read();
        if (prefork is null) return builder;
        // A second call (the app's own, after the hosting startup's) only adds its listener configuration.
        if (configure is not null) builder.ConfigureServices(services => services.AddSingleton(new ListenerConfiguration(configure)));
        if (builder.GetSetting(AppliedKey) == "true") return builder;
        builder.UseSetting(AppliedKey, "true");

        foreach (var (fd, _) in prefork.Listeners) NativeMethods.CloseOnExec(fd);
        return builder.ConfigureServices(services =>
        {
            services.AddSingleton(prefork);
            services.AddSingleton<IPostConfigureOptions<KestrelServerOptions>, InheritedListeners>();
            // Kestrel calls listen() again on each socket: with the master's backlog, not its own 512.
            services.Configure<SocketTransportOptions>(o => o.Backlog = prefork.Backlog);
            if (prefork.GracefulTimeout is { } graceful) services.Configure<HostOptions>(o => o.ShutdownTimeout = graceful);
            services.AddSingleton<RequestTracker>();
            services.AddSingleton<IStartupFilter, RequestTrackingStartupFilter>();
            services.AddHostedService<MasterLink>();
        });
    }

    /// <summary>What an app asked of each inherited listener (TLS, protocols…).</summary>
    internal sealed record ListenerConfiguration(Action<ListenOptions> Configure);

    /// <summary>
    /// Kestrel on the inherited sockets only: endpoints given in code make Kestrel ignore ASPNETCORE_URLS,
    /// --urls and HTTP_PORTS (it logs a warning naming them), so no worker binds a port of its own.
    /// A post-configuration: it runs after Kestrel's own setup (which UseHttps needs), whichever was registered first.
    /// </summary>
    internal sealed class InheritedListeners(PreforkEnvironment prefork, IEnumerable<ListenerConfiguration> configurations)
        : IPostConfigureOptions<KestrelServerOptions>
    {
        public void PostConfigure(string? name, KestrelServerOptions kestrel)
        {
            foreach (var (fd, _) in prefork.Listeners)
                kestrel.ListenHandle((ulong)fd, listen =>
                {
                    foreach (var configuration in configurations) configuration.Configure(listen);
                });
        }
    }
}
