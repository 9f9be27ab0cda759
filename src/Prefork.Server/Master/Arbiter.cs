using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Systemd;
using Prefork.Worker;
using Serilog;

namespace Prefork.Master;

/// <summary>
/// The master process. It binds the sockets, spawns workers that inherit them, and then runs one
/// loop: sleep until a signal or a worker message, handle queued signals, reap the dead, kill the
/// hung, and spawn or retire workers until the right number of the current generation serve.
/// Signals are only queued by their handlers; all the work happens in the loop.
/// </summary>
public sealed class Arbiter
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly string? _configPath;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _overrides;
    private GatewayConfig _config;
    private readonly List<Listener> _listeners = [];
    private readonly List<WorkerHandle> _workers = [];
    private readonly ConcurrentQueue<PosixSignal> _signals = new();
    private readonly WakeUp _wake = new();
    private PidFile? _pidFile;
    private readonly SystemdNotifier _notify = SystemdNotifier.FromEnvironment(); // systemd: sd_notify

    private int _generation = 1;
    private int _targetWorkers;
    private bool _winched;           // WINCH: no workers until HUP
    private int _bootFailures;       // consecutive workers that died before booting
    private DateTime _nextSpawnAllowed = DateTime.MinValue;
    private int _readyGeneration;    // the last generation that was fully booted (0: none yet)

    public Arbiter(GatewayConfig config, string? configPath, IReadOnlyList<KeyValuePair<string, string>> overrides)
    {
        _config = config;
        _configPath = configPath;
        _overrides = overrides;
        _targetWorkers = config.Workers;
    }

    /// <summary>Runs the master until it is told to stop. Returns the process exit code.</summary>
    public int Run()
    {
        Log.Information("Starting prefork {Version} (master pid {Pid})", ServerInfo.Version, Environment.ProcessId);
        try
        {
            if (_config.PidFile.Length > 0)
            {
                _pidFile = new PidFile(Path.GetFullPath(_config.PidFile, _config.BaseDirectory));
                _pidFile.Create();
            }
            foreach (var address in SocketActivation.Addresses(_config.Bind)) // systemd: sockets passed by systemd replace bind
            {
                var listener = Listener.Bind(address, _config.Backlog, _config.UnixSocketMode);
                _listeners.Add(listener);
                Log.Information("Listening at: {Address} (fd {Fd})", listener.Describe(), listener.Fd);
            }
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            Log.Fatal("Cannot start: {Reason}", e.Message);
            Cleanup();
            return 1;
        }
        Log.Information("Using worker class {Class}, {Workers} workers, app {App}", _config.WorkerClass, _targetWorkers, _config.App);
        using var registrations = TrapSignals();

        while (true)
        {
            Sleep();
            while (_signals.TryDequeue(out var signal))
            {
                var stop = HandleSignal(signal);
                if (stop is not null) return Stop(graceful: stop.Value);
            }
            Reap();
            MurderWorkers();
            ManageWorkers();
            _notify.Tick(_workers, _generation); // systemd: watchdog ping, STATUS=
        }
    }

    // ---- signals -------------------------------------------------------------------------

    private static readonly PosixSignal SigUsr1 = (PosixSignal)10, SigUsr2 = (PosixSignal)12;

    private IDisposable TrapSignals()
    {
        var list = new[] { PosixSignal.SIGHUP, PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT, PosixSignal.SIGTTIN,
                PosixSignal.SIGTTOU, PosixSignal.SIGCHLD, PosixSignal.SIGWINCH, SigUsr1, SigUsr2 }
            .Select(sig => PosixSignalRegistration.Create(sig, ctx =>
            {
                ctx.Cancel = true; // the loop decides; never the runtime's default
                _signals.Enqueue(ctx.Signal);
                _wake.Signal();
            }))
            .ToList();
        return new DisposeAll(list);
    }

    private sealed class DisposeAll(List<PosixSignalRegistration> list) : IDisposable
    {
        public void Dispose() => list.ForEach(r => r.Dispose());
    }

    /// <summary>Handles one signal; returns true/false (graceful/fast) when the master should stop.</summary>
    private bool? HandleSignal(PosixSignal signal)
    {
        switch (signal)
        {
            case PosixSignal.SIGCHLD: return null; // reaped right after
            case PosixSignal.SIGTERM: Log.Information("Handling signal: TERM (graceful stop)"); return true;
            case PosixSignal.SIGINT: Log.Information("Handling signal: INT (fast stop)"); return false;
            case PosixSignal.SIGQUIT: Log.Information("Handling signal: QUIT (fast stop)"); return false;
            case PosixSignal.SIGHUP:
                Log.Information("Handling signal: HUP (reload)");
                _notify.Reloading(_workers, _generation); // systemd: RELOADING=1 now, READY=1 once the new generation serves
                Reload();
                return null;
            case PosixSignal.SIGTTIN:
                _targetWorkers++;
                Log.Information("Handling signal: TTIN; workers now {Workers}", _targetWorkers);
                return null;
            case PosixSignal.SIGTTOU:
                _targetWorkers = Math.Max(1, _targetWorkers - 1);
                Log.Information("Handling signal: TTOU; workers now {Workers}", _targetWorkers);
                return null;
            case PosixSignal.SIGWINCH:
                Log.Information("Handling signal: WINCH; retiring all workers (HUP brings them back)");
                _winched = true;
                return null;
        }
        if (signal == SigUsr1)
        {
            Log.Information("Handling signal: USR1; reopening log files");
            Logging.Logging.Configure(_config, "");
            foreach (var w in _workers) Syscall.kill(w.Pid, Signum.SIGUSR1);
        }
        else if (signal == SigUsr2)
            Log.Warning("Handling signal: USR2; in-place upgrade is not supported yet, ignoring");
        return null;
    }

    /// <summary>
    /// HUP: re-read the config; if it is valid, start a new generation of workers. The old ones
    /// are retired one by one as their replacements report ready (see <see cref="ManageWorkers"/>).
    /// </summary>
    private void Reload()
    {
        GatewayConfig next;
        try
        {
            next = ConfigLoader.Load(_configPath, _overrides);
        }
        catch (ConfigException e)
        {
            Log.Error("Reload refused, keeping the running configuration: {Reason}", e.Message);
            _notify.ReloadRefused(e.Message); // systemd: the reload is over
            return;
        }
        if (!next.Bind.SequenceEqual(_config.Bind))
            Log.Warning("bind changed in the config; the listeners are kept as they are until a restart");
        _config = next;
        Logging.Logging.Configure(_config, "");
        _targetWorkers = next.Workers;
        _generation++;
        _winched = false;
        _bootFailures = 0;
        _nextSpawnAllowed = DateTime.MinValue;
        Log.Information("Reloaded configuration; starting generation {Generation} with {Workers} workers", _generation, _targetWorkers);
    }

    // ---- the loop's steps ----------------------------------------------------------------

    /// <summary>Waits up to a second for a signal or a message from a worker, then reads the messages.</summary>
    private void Sleep()
    {
        var fds = new Pollfd[_workers.Count + 1];
        fds[0] = new Pollfd { fd = _wake.ReadFd, events = PollEvents.POLLIN };
        for (int i = 0; i < _workers.Count; i++) fds[i + 1] = new Pollfd { fd = _workers[i].PipeFd, events = PollEvents.POLLIN };
        Syscall.poll(fds, _notify.SleepMs(1000)); // systemd: wake in time for the watchdog
        _wake.Drain();
        foreach (var w in _workers) ReadMessages(w);
    }

    private unsafe void ReadMessages(WorkerHandle w)
    {
        byte* buf = stackalloc byte[4096];
        long n;
        while ((n = Syscall.read(w.PipeFd, buf, 4096)) > 0)
        {
            var text = w.Partial + Encoding.UTF8.GetString(buf, (int)n);
            int nl;
            while ((nl = text.IndexOf('\n')) >= 0)
            {
                OnMessage(w, text[..nl]);
                text = text[(nl + 1)..];
            }
            w.Partial = text;
        }
    }

    private void OnMessage(WorkerHandle w, string line)
    {
        w.LastHeard = DateTime.UtcNow;
        var parts = line.Split(' ', 5);
        switch (parts[0])
        {
            case "ready":
                w.Booted = true;
                _bootFailures = 0;
                Log.Information("Booted {Worker}, generation {Generation}, in {Ms} ms", w, w.Generation, (int)(DateTime.UtcNow - w.SpawnedAt).TotalMilliseconds);
                break;
            case "ping" when parts.Length == 5:
                w.Requests = long.Parse(parts[1]);
                w.BusyMs = long.Parse(parts[2]);
                w.BusyRequest = w.BusyMs < 0 ? "" : $"{parts[3]} {parts[4]}";
                break;
            case "bootfail":
                w.BootFailure = line.Length > 9 ? line[9..] : "unknown";
                break;
        }
    }

    /// <summary>Removes workers that have exited and says how each ended.</summary>
    private void Reap()
    {
        for (int i = _workers.Count - 1; i >= 0; i--)
        {
            var w = _workers[i];
            if (!w.Process.HasExited) continue;
            ReadMessages(w); // a boot failure report may have arrived with the exit
            _workers.RemoveAt(i);
            Syscall.close(w.PipeFd);
            int code = w.Process.ExitCode;
            w.Process.Dispose();
            string how = code > 128 ? $"was killed by signal {code - 128} ({SignalName(code - 128)})" : $"exited with code {code}";
            if (w.Retiring) Log.Information("{Worker} {How} (retired)", w, how);
            else if (!w.Booted)
            {
                _bootFailures++;
                var delay = TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, _bootFailures - 1)));
                _nextSpawnAllowed = DateTime.UtcNow + delay;
                Log.Error("{Worker} failed to boot and {How}: {Reason}. Boot failure {Count} in a row; next attempt in {Delay} s",
                    w, how, w.BootFailure ?? "no reason given (see the worker's log above)", _bootFailures, delay.TotalSeconds);
            }
            else if (code - 128 == 9 && !w.TimedOut)
                Log.Error("{Worker} {How}; perhaps out of memory (check dmesg). Replacing it", w, how);
            else Log.Warning("{Worker} {How}; replacing it", w, how);
        }
    }

    /// <summary>
    /// Kills workers that overran `timeout`: silent for too long, or stuck on one request; and
    /// those that did not boot within `worker_boot_timeout`; and retired ones past their grace.
    /// </summary>
    private void MurderWorkers()
    {
        var now = DateTime.UtcNow;
        foreach (var w in _workers)
        {
            if (w.TimedOut) continue;
            if (w.KillAt is { } killAt && now >= killAt)
            {
                Log.Warning("{Worker} did not finish within graceful_timeout ({Seconds} s); killing it", w, _config.GracefulTimeout);
                Kill(w, Signum.SIGKILL);
                w.TimedOut = true;
                continue;
            }
            if (!w.Booted)
            {
                if ((now - w.SpawnedAt).TotalSeconds > _config.WorkerBootTimeout)
                {
                    w.BootFailure = $"did not report ready within worker_boot_timeout ({_config.WorkerBootTimeout} s)";
                    Log.Error("{Worker} {Reason}; killing it", w, w.BootFailure);
                    Kill(w, Signum.SIGKILL);
                    w.TimedOut = true;
                }
                continue;
            }
            if (_config.Timeout == 0 || w.Retiring) continue;
            double silent = (now - w.LastHeard).TotalSeconds;
            double busy = w.BusyMs < 0 ? -1 : w.BusyMs / 1000.0 + silent;
            if (busy > _config.Timeout)
                Log.Error("WORKER TIMEOUT: {Worker} spent {Busy:F1} s on {Request} (timeout {Timeout} s); killing it",
                    w, busy, w.BusyRequest, _config.Timeout);
            else if (silent > _config.Timeout)
                Log.Error("WORKER TIMEOUT: {Worker} silent for {Silent:F1} s (timeout {Timeout} s){Doing}; killing it",
                    w, silent, _config.Timeout, w.BusyRequest.Length > 0 ? $", last seen serving {w.BusyRequest}" : ", idle when last heard");
            else continue;
            Kill(w, Signum.SIGKILL);
            w.TimedOut = true;
        }
    }

    /// <summary>
    /// Brings the workers to the target: for every index 0..N-1 one booted worker of the current
    /// generation. A replacement is spawned first and the worker it replaces is retired only once
    /// the replacement reports ready, so capacity never dips during a reload.
    /// </summary>
    private void ManageWorkers()
    {
        int target = _winched ? 0 : _targetWorkers;
        var active = _workers.Where(w => !w.Retiring).ToList();
        foreach (var extra in active.Where(w => w.Index >= target)) Retire(extra, "fewer workers wanted");
        for (int index = 0; index < target; index++)
        {
            var holders = active.Where(w => w.Index == index).ToList();
            var current = holders.FirstOrDefault(w => w.Generation == _generation);
            if (current is null)
            {
                if (DateTime.UtcNow >= _nextSpawnAllowed) Spawn(index);
                continue;
            }
            if (current.Booted)
                foreach (var old in holders.Where(w => w != current)) Retire(old, $"replaced by generation {_generation}");
        }
        if (_readyGeneration != _generation && target > 0
            && _workers.Count(w => w.Generation == _generation && w.Booted && !w.Retiring) >= target)
            OnGenerationReady(target);
    }

    /// <summary>Every worker of the current generation has booted: after start, and after each HUP.</summary>
    private void OnGenerationReady(int workers)
    {
        _readyGeneration = _generation;
        Log.Information("Ready: {Workers} workers serving, generation {Generation}", workers, _generation);
        _notify.Ready(_workers, _generation); // systemd: READY=1
    }

    private void Retire(WorkerHandle w, string why)
    {
        if (w.Retiring) return;
        w.RetiringSince = DateTime.UtcNow;
        w.KillAt = DateTime.UtcNow.AddSeconds(_config.GracefulTimeout);
        Log.Information("Retiring {Worker}: {Why}", w, why);
        Kill(w, Signum.SIGTERM);
    }

    // ---- spawning --------------------------------------------------------------------------

    private void Spawn(int index)
    {
        if (Syscall.pipe(out int readFd, out int writeFd) != 0)
        {
            Log.Error("pipe() failed: {Error}", Stdlib.GetLastError());
            return;
        }
        Syscall.fcntl(readFd, FcntlCommand.F_SETFD, 1); // FD_CLOEXEC: only the master reads it
        Syscall.fcntl(readFd, FcntlCommand.F_SETFL, Syscall.fcntl(readFd, FcntlCommand.F_GETFL) | (int)OpenFlags.O_NONBLOCK);
        Syscall.fcntl(writeFd, FcntlCommand.F_SETFD, 0); // inherited by this one worker; closed here right after
        try
        {
            var psi = WorkerStartInfo();
            SocketActivation.RemoveFromWorkerEnvironment(psi.Environment); // systemd: LISTEN_*, NOTIFY_SOCKET are the master's
            psi.Environment[WorkerProcess.EnvListenFds] = string.Join(",", _listeners.Select(l => l.Fd));
            psi.Environment[WorkerProcess.EnvPipeFd] = writeFd.ToString();
            psi.Environment[WorkerProcess.EnvMasterPid] = Environment.ProcessId.ToString();
            psi.Environment[WorkerProcess.EnvWorkerIndex] = index.ToString();
            psi.Environment[WorkerProcess.EnvGeneration] = _generation.ToString();
            psi.Environment[WorkerProcess.EnvConfig] = _config.ToToml();
            psi.Environment[WorkerProcess.EnvConfigPath] = _config.FilePath is null ? "" : Path.GetFullPath(_config.FilePath);
            var process = Process.Start(psi)!;
            _workers.Add(new WorkerHandle { Process = process, Pid = process.Id, Index = index, Generation = _generation, PipeFd = readFd });
            Log.Debug("Spawned worker {Index} (pid {Pid}), generation {Generation}", index, process.Id, _generation);
        }
        catch (Exception e)
        {
            Log.Error("Could not start a worker process: {Reason}", e.Message);
            Syscall.close(readFd);
            _nextSpawnAllowed = DateTime.UtcNow.AddSeconds(1);
        }
        finally
        {
            Syscall.close(writeFd);
        }
    }

    /// <summary>The same program, in worker mode: the apphost directly, or `dotnet prefork.dll`.</summary>
    private static ProcessStartInfo WorkerStartInfo()
    {
        var exe = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet")
            psi.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        psi.ArgumentList.Add(ServerInfo.WorkerFlag);
        return psi;
    }

    // ---- stopping ----------------------------------------------------------------------------

    /// <summary>
    /// TERM (graceful): workers stop accepting, finish in-flight requests and what waits in the
    /// accept queue, within graceful_timeout; then whatever is left is killed. INT/QUIT: at once.
    /// </summary>
    private int Stop(bool graceful)
    {
        _notify.Stopping(_workers, _generation); // systemd: STOPPING=1
        var deadline = DateTime.UtcNow.AddSeconds(graceful ? _config.GracefulTimeout : 5);
        foreach (var w in _workers)
        {
            w.RetiringSince = DateTime.UtcNow;
            Kill(w, graceful ? Signum.SIGTERM : Signum.SIGQUIT);
        }
        while (_workers.Count > 0 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(50);
            foreach (var w in _workers) ReadMessages(w);
            Reap();
            _notify.Tick(_workers, _generation); // systemd: keep the watchdog fed while workers finish
        }
        foreach (var w in _workers)
        {
            Log.Warning("{Worker} still running at shutdown; killing it", w);
            Kill(w, Signum.SIGKILL);
            w.Process.WaitForExit(2000);
        }
        Cleanup();
        Log.Information("Shutting down: master {Pid} exits", Environment.ProcessId);
        return 0;
    }

    private void Cleanup()
    {
        foreach (var l in _listeners) l.Dispose();
        _pidFile?.Remove();
    }

    private static void Kill(WorkerHandle w, Signum signal)
    {
        if (Syscall.kill(w.Pid, signal) != 0 && Stdlib.GetLastError() != Errno.ESRCH)
            Log.Warning("kill({Pid}, {Signal}) failed: {Error}", w.Pid, signal, Stdlib.GetLastError());
    }

    private static string SignalName(int signal) =>
        Enum.IsDefined(typeof(Signum), signal) ? ((Signum)signal).ToString() : "signal " + signal;
}
