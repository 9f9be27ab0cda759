using Prefork.Gateway;

namespace Prefork;

/// <summary>
/// An application and Prefork as one executable, which can be published as a single NativeAOT binary:
/// the application is linked in, not loaded by name. Its Main hands over the command line:
/// <code>return PreforkHost.Run&lt;MyApp&gt;(args);   // or PreforkHost.Run(args, new MyApp())</code>
/// The executable takes every `prefork` flag and config file (and `ctl`). The master starts each
/// worker by executing this same file (<see cref="Environment.ProcessPath"/>) with the worker flag, and
/// the worker serves the linked application; `app` shows which one (ASSEMBLY:TYPE) and cannot choose another.
/// </summary>
public static class PreforkHost
{
    /// <summary>
    /// Runs the master, a worker or `ctl`; each worker creates its own <typeparamref name="TApp"/> (the master never does).
    /// TApp implements <see cref="IGatewayApplication"/> or <see cref="IAsyncGatewayApplication"/>.
    /// </summary>
    public static int Run<TApp>(string[] args) where TApp : class, new() =>
        CommandLine.Run(args, _ => new TApp(), () => Name(Checked(typeof(TApp))));

    /// <summary>Runs the master, a worker or `ctl`; a worker serves <paramref name="app"/> (which every process of this executable constructs).</summary>
    public static int Run(string[] args, IGatewayApplication app) =>
        CommandLine.Run(args, _ => app, () => Name(app.GetType()));

    /// <summary>The same for an asynchronous application.</summary>
    public static int Run(string[] args, IAsyncGatewayApplication app) =>
        CommandLine.Run(args, _ => app, () => Name(app.GetType()));

    private static Type Checked(Type type) =>
        typeof(IGatewayApplication).IsAssignableFrom(type) || typeof(IAsyncGatewayApplication).IsAssignableFrom(type) ? type
            : throw new ArgumentException($"{type.FullName} implements neither IGatewayApplication nor IAsyncGatewayApplication");

    private static string Name(Type type) => $"{type.Assembly.GetName().Name}:{type.FullName}";
}
