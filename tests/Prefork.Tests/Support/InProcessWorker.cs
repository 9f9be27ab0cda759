using System.Net;
using System.Net.Sockets;
using Prefork.Config;
using Prefork.Gateway;
using Prefork.Http;
using Prefork.Interop;
using Prefork.Worker;

namespace Prefork.Tests.Support;

/// <summary>
/// A worker's engine run inside the test process, on a loopback listener of its own: the same
/// engine, connections and gateway handler a worker process runs, serving <c>app</c>, without the
/// process around them (no master, config hand-off, signals or heartbeat; the real binary's tests
/// cover those). The app's OnWorkerStart and OnWorkerStop run as in a worker. For connection- and
/// request-level behaviour: no process is started.
/// </summary>
public sealed class InProcessWorker : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly WakeUp _wake = new();
    private readonly WorkerContext _context;
    private readonly Thread _thread;
    private Exception? _failure;

    public int Port { get; }

    public HttpResponse Get(string path) => RawHttp.Get(Port, path);

    /// <param name="toml">The worker's settings (worker_class among them), as in a config file.</param>
    /// <param name="beforeStart">
    /// Runs with the port once the listener listens and before the engine starts: clients it connects
    /// wait in the accept queue.
    /// </param>
    /// <param name="stopAtStart">The engine starts already stopping, as a worker told TERM as it boots.</param>
    public InProcessWorker(string toml, object app, Action<int>? beforeStart = null, bool stopAtStart = false)
    {
        var config = ConfigLoader.Parse(toml, null);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(128);
        _listener.Blocking = false; // as a worker's inherited listeners are
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        var engine = WorkerProcess.CreateEngine(config);
        _context = new WorkerContext
        {
            Config = config, App = app, Info = new WorkerInfo(0, Environment.ProcessId, Environment.ProcessId, 1),
            Limits = HttpLimits.From(config), ErrorWriter = TextWriter.Null, Multithread = WorkerProcess.IsMultithread(engine, config),
        };
        (app as IWorkerLifecycle)?.OnWorkerStart(_context.Info);
        beforeStart?.Invoke(Port);
        if (stopAtStart) Stop();
        _thread = new Thread(() =>
        {
            try
            {
                engine.Run(_context, [_listener], _wake);
                (app as IWorkerLifecycle)?.OnWorkerStop(_context.Info);
            }
            catch (Exception e) { _failure = e; }
        }) { IsBackground = true, Name = $"in-process {engine.Describe(config)} worker" };
        _thread.Start();
    }

    /// <summary>Tells the engine to stop, as TERM does in a worker.</summary>
    private void Stop()
    {
        _context.Stopping.Cancel();
        _wake.Signal();
    }

    /// <summary>Stops the engine as TERM does in a worker (it finishes what is in flight) and checks that it ended cleanly.</summary>
    public void Dispose()
    {
        Stop();
        bool stopped = _thread.Join(TimeSpan.FromSeconds(30));
        _listener.Dispose();
        if (stopped) _wake.Dispose(); // else the engine may still poll it
        if (!stopped) throw new TimeoutException("the in-process worker did not stop within 30 s");
        if (_failure is not null) throw new InvalidOperationException("the in-process worker's engine failed", _failure);
    }
}
