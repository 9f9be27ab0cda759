using System.Net.Sockets;
using Prefork.Interop;

namespace Prefork.Engines;

/// <summary>
/// A worker class (`worker_class`): how one process accepts and serves connections on the
/// listening sockets it inherited. <see cref="Run"/> returns once the worker is stopping and
/// everything in flight is finished.
/// </summary>
public interface IWorkerEngine
{
    void Run(EngineContext context, IReadOnlyList<Socket> listeners, WakeUp wake);

    /// <summary>How the worker describes itself in the log, e.g. "threads (4 threads)".</summary>
    string Describe(Config.GatewayConfig config);
}
