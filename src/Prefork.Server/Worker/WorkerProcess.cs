using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Connections;
using Prefork.Engines;
using Prefork.Gateway;
using Prefork.Http;
using Prefork.Logging;
using Prefork.Protocol;
using static Prefork.Protocol.WorkerEnvironment; // the names the master sets
using Serilog;
using Prefork.Interop;

namespace Prefork.Worker;

/// <summary>
/// A worker process from boot to exit: read what the master passed in the environment, load
/// the app, report ready, beat the heart, run the worker class until told to stop.
/// </summary>
public static class WorkerProcess
{
    /// <summary>A worker that failed to boot exits with this (Gunicorn's APP_LOAD_ERROR).</summary>
    public const int ExitAppLoadError = 4;

    /// <summary>Runs this worker; <paramref name="loadApp"/> gives the application (AppLoader, or the one linked in: PreforkHost).</summary>
    public static int Run(Func<GatewayConfig, object> loadApp)
    {
        var channel = new MasterChannel(EnvInt(EnvPipeFd));
        try
        {
            return Serve(channel, loadApp);
        }
        catch (Exception e) when (!channel.ReadyReported)
        {
            // Whatever keeps a worker from booting, the master logs why and retries with backoff. Expected
            // failures say all in their message; anything else also leaves its stack in the worker's log.
            bool expected = e is AppLoadException or ConfigException or UnauthorizedAccessException;
            var why = expected ? e.Message : $"{e.GetType().Name}: {e.Message}";
            Log.Error(expected ? null : e, "Worker failed to boot: {Reason}", why);
            channel.ReportBootFailure(why);
            Log.CloseAndFlush();
            return ExitAppLoadError;
        }
    }

    private static int Serve(MasterChannel channel, Func<GatewayConfig, object> loadApp)
    {
        int masterPid = EnvInt(EnvMasterPid);
        var info = new WorkerInfo(EnvInt(EnvWorkerIndex), Environment.ProcessId, masterPid, EnvInt(EnvGeneration));
        var config = ConfigHandOff.Read(Environment.GetEnvironmentVariable(EnvConfig), ConfigHandOff.TakeSecrets());
        Logging.Logging.Configure(config, $"worker {info.Index}");
        Libc.SetProcessName($"{config.Get(Settings.ProcName)}-w{info.Index}");
        DropPrivileges(config);
        var app = loadApp(config);
        var tls = TlsServer.Load(config); // a bad certificate or key is this worker's boot failure

        var listeners = Environment.GetEnvironmentVariable(EnvListenFds)!.Split(',')
            .Select(fd => new Socket(new SafeSocketHandle(int.Parse(fd, CultureInfo.InvariantCulture), ownsHandle: true)) { Blocking = false })
            .ToList();
        var engine = CreateEngine(config);
        using var accessLog = config.Get(Settings.AccessLog).Length > 0 ? new AccessLog(config) : null;
        var context = new WorkerContext
        {
            Config = config, App = app, Info = info, Limits = HttpLimits.From(config),
            ErrorWriter = new ErrorLogWriter(), AccessLog = accessLog, Multithread = IsMultithread(engine, config),
            Tls = tls,
        };
        using var wake = new WakeUp();
        using var signals = TrapSignals(context, wake, accessLog, config);

        try
        {
            (app as IWorkerLifecycle)?.OnWorkerStart(info);
        }
        catch (Exception e)
        {
            // The app's own start-up failing is a boot failure: reported, and retried with backoff.
            Log.Error(e, "OnWorkerStart of the application threw");
            throw new AppLoadException($"OnWorkerStart threw {e.GetType().Name}: {e.Message}");
        }
        // Serilog reads Activity.Current for every event it writes, and Activity's type initializer
        // needs a new fd (/dev/urandom, for Guid.NewGuid). Run it now: out of fds, the first warning
        // (accept failing with EMFILE) would throw from it and kill the worker.
        _ = System.Diagnostics.Activity.Current;
        channel.ReportReady();
        Log.Information("Booted: generation {Generation}, {Class} worker, serving {App}", info.Generation, engine.Describe(config), config.Get(Settings.App));
        if (BodyBuffer.CheckDirectory(config.WorkerTmpDir) is { } tmpDirError)
            Log.Error("worker_tmp_dir is unusable ({Reason}): request bodies over {Limit} bytes will get 500", tmpDirError, BodyBuffer.MemoryLimit);
        // The engine runs on this, the main thread; an epoll loop there is not to be preempted by the others.
        var helpers = engine is EpollWorker ? new HelperThreads() : null;
        var heartbeat = new Thread(() => Heartbeat(context, channel, masterPid, helpers)) { IsBackground = true, Name = "heartbeat" };
        heartbeat.Start();

        engine.Run(context, listeners, wake);

        (app as IWorkerLifecycle)?.OnWorkerStop(info);
        // Bytes allocated per request (app included) tell whether the hot path stays allocation-free.
        Log.Information("Exiting after {Requests} requests ({BytesPerRequest} bytes allocated per request, {Gen0} gen0 GCs)",
            context.Requests, context.Requests == 0 ? 0 : GC.GetTotalAllocatedBytes() / context.Requests, GC.CollectionCount(0));
        if (tls is not null) Log.Information("TLS handshakes failed: {Failures}", tls.HandshakeFailures);
        Log.CloseAndFlush();
        return 0;
    }

    /// <summary>`user`/`group`: workers give up the master's identity before they load any application code.</summary>
    private static void DropPrivileges(GatewayConfig config)
    {
        if (Libc.ResolveIdentity(config.Get(Settings.User), config.Get(Settings.Group)) is not var (uid, gid)) return;
        // Order matters: supplementary groups and gid while still privileged, uid last.
        if (Syscall.setgroups(1, [gid]) != 0 || Syscall.setgid(gid) != 0 || Syscall.setuid(uid) != 0)
            throw new UnauthorizedAccessException($"cannot switch to uid {uid} gid {gid}: {Stdlib.GetLastError()} (the master must run as root to change user)");
        Log.Information("Running as uid {Uid}, gid {Gid}", uid, gid);
    }

    /// <summary>The engine of `worker_class` (the tests also run it in their own process).</summary>
    internal static IWorkerEngine CreateEngine(GatewayConfig config) => config.Get(Settings.WorkerClass) switch
    {
        // Gunicorn's rule: the sync class with more than one thread is the threaded class.
        "sync" when config.Get(Settings.Threads) > 1 => new ThreadWorker(),
        "sync" => new SyncWorker(),
        "threads" => new ThreadWorker(),
        "epoll" => new EpollWorker(),
        var other => throw new ConfigException($"setting 'worker_class' = \"{other}\" is not supported"),
    };

    /// <summary>Whether the app's Invoke runs on several threads at once (gateway.multithread).</summary>
    internal static bool IsMultithread(IWorkerEngine engine, GatewayConfig config) => engine is ThreadWorker && config.Get(Settings.Threads) > 1;

    /// <summary>TERM: graceful stop. INT/QUIT: stop now. USR1: reopen logs. Others the master owns are ignored here.</summary>
    private static IDisposable TrapSignals(WorkerContext context, WakeUp wake, AccessLog? accessLog, GatewayConfig config)
    {
        var registrations = new List<PosixSignalRegistration>
        {
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; context.Stopping.Cancel(); wake.Signal(); }),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; ExitNow(0); }),
            PosixSignalRegistration.Create(PosixSignal.SIGQUIT, c => { c.Cancel = true; ExitNow(0); }),
            PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => c.Cancel = true),
            PosixSignalRegistration.Create(PosixSignal.SIGWINCH, c => c.Cancel = true),
            PosixSignalRegistration.Create(PosixSignal.SIGTTIN, c => c.Cancel = true),
            PosixSignalRegistration.Create(PosixSignal.SIGTTOU, c => c.Cancel = true),
            PosixSignalRegistration.Create((PosixSignal)10 /* SIGUSR1 */, c =>
            {
                c.Cancel = true;
                accessLog?.Reopen();
                Logging.Logging.Configure(config, $"worker {context.Info.Index}");
            }),
            PosixSignalRegistration.Create((PosixSignal)12 /* SIGUSR2 */, c => c.Cancel = true),
        };
        return new Registrations(registrations);
    }

    private sealed class Registrations(List<PosixSignalRegistration> list) : IDisposable
    {
        public void Dispose() => list.ForEach(r => r.Dispose());
    }

    /// <summary>
    /// Tells the master this worker lives and what it is doing, once a second. Exits the process
    /// when the master is gone (its pid changed or the pipe broke), so no worker outlives it. In an
    /// epoll worker, also moves the threads started since the last beat off the loop's way.
    /// </summary>
    private static void Heartbeat(WorkerContext context, MasterChannel channel, int masterPid, HelperThreads? helpers)
    {
        int countsFrom = 0; // counts that did not fit in one line go first in the next
        var counts = new RequestCounts();
        while (true)
        {
            var (busyMs, method, path) = context.OldestRequest();
            RequestCounters.Snapshot(counts, context.ActiveRequests(), context.Tls?.HandshakeFailures ?? 0);
            var beat = new WorkerMessage.Heartbeat(context.Requests, busyMs, method, path, counts, countsFrom);
            bool delivered = channel.Send(beat);
            countsFrom = beat.NextCountsFrom();
            if (!delivered || Syscall.getppid() != masterPid)
            {
                Log.Warning("Master {MasterPid} is gone; worker exiting", masterPid);
                Log.CloseAndFlush();
                ExitNow(1);
            }
            helpers?.Demote();
            Thread.Sleep(1000);
        }
    }

    /// <summary>Leaves at once, without waiting for requests in flight (INT/QUIT, or an orphaned worker).</summary>
    private static void ExitNow(int code)
    {
        Log.CloseAndFlush();
        Syscall.exit(code);
    }

    private static int EnvInt(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v : throw new InvalidOperationException($"{name} is not set: workers are started by the prefork master");
}
