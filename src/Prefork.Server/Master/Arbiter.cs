using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Control;
using Prefork.Metrics;
using System.Net.Sockets;
using Prefork.Protocol;
using Prefork.Systemd;
using Serilog;
using Prefork.Interop;

namespace Prefork.Master;

/// <summary>
/// The master process. It binds the sockets, spawns workers that inherit them, and then runs one
/// loop: sleep until a signal or a worker message, handle queued signals, reap the dead, kill the
/// hung, and spawn or retire workers until the right number of the current generation serve.
/// Signals are only queued by their handlers; all the work happens in the loop.
/// </summary>
public sealed class Arbiter
{
    private readonly string? _configPath;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _overrides;
    private GatewayConfig _config;
    private readonly List<Listener> _listeners = [];
    private readonly List<WorkerHandle> _workers = [];
    private readonly WakeUp _wake = new();
    private readonly CommandQueue _commands;          // signals and control requests, carried out by the loop
    private readonly StatusBoard _status;             // counters, and the snapshot published after each turn
    private PidFile? _pidFile;
    private ControlServer? _control;                 // `prefork ctl`: reads the snapshot, enqueues commands
    private MetricsServer? _metrics;                 // metrics_bind: Prometheus, /ready, /live from the snapshot
    private StatsdSender? _statsd;                   // statsd_host: the snapshot once a second, over UDP
    private readonly CodeWatcher _codeWatcher;        // reload = true: the app's files, polled once a second
    private readonly SystemdNotifier _notify = SystemdNotifier.FromEnvironment(); // systemd: sd_notify
    private readonly TimeProvider _clock = TimeProvider.System; // monotonic timestamps only (see Monotonic)
    private readonly Supervision _supervision;
    private readonly SpawnBackoff _backoff;
    private WorkerSpawner _spawner = null!;          // once the notify socket is open (Start)
    private NotifySocket _workerNotify = null!;      // command workers' sd_notify (READY=1, WATCHDOG=1)

    private int _generation = 1;
    private int _targetWorkers;
    private bool _draining;          // prefork ctl drain: not ready, serving all the same
    private bool _winched;           // WINCH: no workers until HUP
    private int _readyGeneration;    // the last generation announced as fully serving
    private bool _stopping;          // TERM, INT or QUIT: the workers are being stopped

    public Arbiter(GatewayConfig config, string? configPath, IReadOnlyList<KeyValuePair<string, string>> overrides)
    {
        _config = config;
        _configPath = configPath is null ? null : Path.GetFullPath(configPath);
        _overrides = overrides;
        _targetWorkers = config.Get(Settings.Workers);
        _supervision = new Supervision(_clock);
        _backoff = new SpawnBackoff(_clock);
        _commands = new CommandQueue(_wake.Signal);
        _status = new StatusBoard(_clock);
        _codeWatcher = new CodeWatcher(_clock);
    }

    /// <summary>Runs the master until it is told to stop. Returns the process exit code.</summary>
    public int Run()
    {
        if (Start() is { } failed) return failed;
        using var registrations = TrapSignals();
        _codeWatcher.Prime(_config); // reload = true: what the first workers load
        ManageWorkers(); // spawn the first workers now, not after the first second's sleep
        while (true)
        {
            try
            {
                Sleep();
                while (_commands.TryDequeue(out var command))
                    if (Handle(command) is { } graceful) return Stop(graceful);
                Reap();
                AckDelayedWorkers();
                MurderWorkers();
                RecycleWorkers();
                ManageWorkers();
                if (_codeWatcher.Changed(_config) is { } changed)
                {
                    Log.Information("reload = true: {File} changed; reloading", changed);
                    _commands.Enqueue(new MasterCommand.Reload());
                }
                var status = Publish();
                _notify.Tick(status); // systemd: watchdog ping, STATUS=
                _statsd?.Tick(status);
            }
            catch (Exception e)
            {
                // The master must outlive its own bugs: workers depend on it. Log, pause, go on.
                Log.Error(e, "Unexpected error in the master loop; continuing");
                Thread.Sleep(1000);
            }
        }
    }

    /// <summary>Process settings, pidfile, listeners, and after an upgrade the previous image's workers; an exit code if it cannot start.</summary>
    private int? Start()
    {
        var upgrade = InPlaceUpgrade.Take();
        Log.Information(upgrade is null ? "Starting prefork {Version} (master pid {Pid})" : "Upgraded in place to prefork {Version} (master pid {Pid} kept)",
            ServerInfo.Version, Environment.ProcessId);
        ApplyProcessSettings();
        if (upgrade is null) Hooks.Run(_config, Settings.OnStarting, wait: TimeSpan.FromSeconds(30));
        try
        {
            _workerNotify = NotifySocket.Open(upgrade?.NotifyFd);
            _spawner = new WorkerSpawner(_clock, _workerNotify);
            if (_config.Get(Settings.PidFile) is { Length: > 0 } pidFile)
            {
                _pidFile = new PidFile(Path.GetFullPath(pidFile, _config.BaseDirectory));
                _pidFile.Create();
            }
            OpenListeners(SocketActivation.Addresses(_config.Get(Settings.Bind)), upgrade?.Listeners); // systemd: passed sockets replace bind
            OpenControl(upgrade);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            Log.Fatal("Cannot start: {Reason}", e.Message);
            Cleanup();
            return 1;
        }
        if (upgrade is not null) Adopt(upgrade);
        DescribeWorkers(_config);
        Publish(); // the control socket answers from the first moment
        return null;
    }

    /// <summary>`control_socket` and `metrics_bind`: a master that cannot open them says why and serves all the same (its signals still work).</summary>
    private void OpenControl(InPlaceUpgrade.State? upgrade)
    {
        _draining = upgrade?.Draining ?? false;
        OpenControlSocket(upgrade?.ControlFd);
        if (_config.Get(Settings.StatsdHost).Length > 0)
        {
            try { _statsd = StatsdSender.Open(_config.Get(Settings.StatsdHost), _config.Get(Settings.StatsdPrefix)); }
            catch (IOException e) { Log.Error("No statsd: {Reason}", e.Message); }
        }
        OpenMetrics(upgrade?.MetricsFd);
    }

    private void OpenControlSocket(int? inheritedFd)
    {
        if (ControlServer.SocketPath(_config) is not { } path)
        {
            HandOver.Adopt(inheritedFd, _ => false); // the new config turned it off
            return;
        }
        try
        {
            _control = ControlServer.Open(path, () => _status.Current, _commands, inheritedFd);
            Log.Information("Control socket: {Path} (prefork ctl)", path);
        }
        catch (IOException e)
        {
            Log.Error("No control socket: {Reason}", e.Message);
        }
    }

    private void OpenMetrics(int? inheritedFd)
    {
        if (_config.Get(Settings.MetricsBind).Length == 0)
        {
            HandOver.Adopt(inheritedFd, _ => false); // the new config turned it off
            return;
        }
        try
        {
            _metrics = MetricsServer.Open(_config.Get(Settings.MetricsBind), () => _status.Current, inheritedFd);
            Log.Information("Metrics at: http://{Address}/metrics (also /ready, /live)", _metrics.LocalEndPoint);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            Log.Error("No metrics listener: {Reason}", e.Message);
        }
    }

    /// <summary>What the workers run, and which settings set in the config do not apply to them.</summary>
    private void DescribeWorkers(GatewayConfig config)
    {
        if (config.RunsCommand)
            Log.Information("Running command [{Command}] as {Workers} workers in {Folder} (ready: {Ready}, stop_signal: {Stop})",
                string.Join(", ", config.Get(Settings.Command).Select(a => $"\"{a}\"")), _targetWorkers, WorkerSpawner.WorkingDirectory(config), config.Get(Settings.Ready), config.Get(Settings.StopSignal));
        else
            Log.Information("Using worker class {Class}, {Workers} workers, app {App}", config.Get(Settings.WorkerClass), _targetWorkers, config.Get(Settings.App));
        if (config.InapplicableSettings.ToList() is { Count: > 0 } ignored)
            Log.Warning(config.RunsCommand
                ? "command is set, so these settings of gateway workers do not apply (the program serves on its own terms): {Keys}"
                : "These settings apply to command workers only, and command is not set: {Keys}", string.Join(", ", ignored));
    }

    private void ApplyProcessSettings()
    {
        if (_config.Get(Settings.Chdir) is { Length: > 0 } chdir) Directory.SetCurrentDirectory(Path.GetFullPath(chdir, _config.BaseDirectory));
        if (_config.Get(Settings.Umask) is { Length: > 0 } umask) Syscall.umask(NativeConvert.FromOctalPermissionString(umask)); // inherited by workers
        Libc.SetProcessName(_config.Get(Settings.ProcName));
    }

    // ---- listeners -------------------------------------------------------------------------

    /// <summary>Binds each address, reusing an already-open listener (after HUP or an in-place upgrade) where the address is unchanged.</summary>
    private void OpenListeners(IReadOnlyList<ListenAddress> addresses, List<InPlaceUpgrade.ListenerState>? inherited)
    {
        foreach (var address in addresses)
        {
            if (_listeners.Any(l => l.Address.Text == address.Text)) continue;
            var handed = inherited?.FirstOrDefault(l => l.Text == address.Text);
            var listener = handed is not null ? Listener.Adopt(address, handed.Fd) : Listener.Bind(address, _config.Get(Settings.Backlog), _config.Get(Settings.UnixSocketMode));
            _listeners.Add(listener);
            Log.Information("Listening at: {Address} (fd {Fd}{How})", listener.Describe(_config.CertFile is not null), listener.Fd, handed is null ? "" : ", kept across the upgrade");
        }
        foreach (var stale in inherited?.Where(l => !addresses.Any(a => a.Text == l.Text)) ?? [])
            Syscall.close(stale.Fd);
    }

    /// <summary>HUP with a changed `bind`: open the new addresses first, then close the ones no longer wanted.</summary>
    private void Rebind(IReadOnlyList<string> binds)
    {
        if (SocketActivation.PassedSockets().Count > 0)
        {
            Log.Warning("bind changed, but the sockets come from systemd: change the .socket unit instead");
            return;
        }
        OpenListeners(binds.Select(ListenAddress.Parse).ToList(), null);
        foreach (var gone in _listeners.Where(l => !binds.Contains(l.Address.Text)).ToList())
        {
            Log.Information("No longer listening at {Address}", gone.Describe(_config.CertFile is not null));
            _listeners.Remove(gone);
            gone.Dispose(); // old workers keep their copy until they retire
        }
    }

    // ---- signals -------------------------------------------------------------------------

    private IDisposable TrapSignals()
    {
        var list = MasterSignals.Trapped
            .Select(s => PosixSignalRegistration.Create(s.Signal, ctx =>
            {
                ctx.Cancel = true; // the loop decides; never the runtime's default
                _commands.Enqueue(new MasterCommand.Signal(ctx.Signal));
            }))
            .ToList();
        return new DisposeAll(list);
    }

    private sealed class DisposeAll(List<PosixSignalRegistration> list) : IDisposable
    {
        public void Dispose() => list.ForEach(r => r.Dispose());
    }

    /// <summary>Carries out one signal or control request; returns true/false (graceful/fast) when the master should stop.</summary>
    private bool? Handle(MasterCommand command)
    {
        if (command is MasterCommand.Signal signal) return HandleSignal(signal.Number);
        Log.Information("Handling control request: {Command}", Describe(command));
        switch (command)
        {
            case MasterCommand.Stop stop:
                command.Complete(stop.Quick ? "stopping now (fast)" : $"stopping gracefully (graceful_timeout {_config.Get(Settings.GracefulTimeout)} s)");
                return !stop.Quick;
            case MasterCommand.Scale scale:
                _targetWorkers = Math.Clamp(scale.Workers ?? _targetWorkers + scale.Delta, 1, 1024);
                Log.Information("Workers now {Workers} (prefork ctl scale)", _targetWorkers);
                command.Complete($"target workers now {_targetWorkers}");
                break;
            case MasterCommand.Reload:
                _notify.Reloading(Publish());
                if (Reload() is { } refused) command.Refuse("reload refused, the running configuration goes on: " + refused);
                else command.Complete($"reloading: generation {_generation} starts with {_targetWorkers} workers");
                break;
            case MasterCommand.Reopen:
                HandleSignal(MasterSignals.Usr1);
                command.Complete("log files reopened");
                break;
            case MasterCommand.Drain drain:
                _draining = drain.On;
                if (drain.On) Log.Warning("Draining (prefork ctl drain): readiness says no so that load balancers stop sending; the workers go on serving until prefork ctl resume");
                else Log.Information("Drain ended (prefork ctl resume): readiness follows the workers again");
                command.Complete(drain.On ? "draining: /ready answers 503, the workers go on serving" : "resumed: /ready answers 200 at full strength");
                break;
            case MasterCommand.KillWorker kill:
                if (_workers.FirstOrDefault(w => w.Pid == kill.Pid) is not { } doomed) command.Refuse($"no worker has pid {kill.Pid}");
                else if (doomed.Retire(_clock.After(Supervision.AbortGrace)))
                {
                    _status.EndingBecause(doomed, "ctl");
                    Log.Warning("Stopping {Worker} now, asked by prefork ctl; it is replaced at once", doomed);
                    Kill(doomed, doomed.FastStopSignal);
                    command.Complete($"{doomed} stopped; a replacement starts");
                }
                else command.Refuse($"{doomed} is already on its way out ({StatusBoard.StateName(doomed.State)})");
                break;
            case MasterCommand.RecycleWorker recycle:
                if (_workers.FirstOrDefault(w => w.Pid == recycle.Pid) is not { } old) command.Refuse($"no worker has pid {recycle.Pid}");
                else if (old.Recycle("asked by prefork ctl"))
                {
                    Log.Information("Recycling {Worker}: asked by prefork ctl", old);
                    command.Complete($"{old} retires once its replacement is ready");
                }
                else command.Refuse($"{old} is {StatusBoard.StateName(old.State)}; only a serving worker can be recycled");
                break;
        }
        return null;
    }

    private static string Describe(MasterCommand command) => command switch
    {
        MasterCommand.Scale { Workers: { } n } => $"scale {n}",
        MasterCommand.Scale s => $"scale {s.Delta:+0;-0}",
        MasterCommand.Stop s => s.Quick ? "stop --quick" : "stop",
        MasterCommand.Drain d => d.On ? "drain" : "resume",
        MasterCommand.KillWorker k => $"kill {k.Pid}",
        MasterCommand.RecycleWorker r => $"recycle {r.Pid}",
        _ => command.GetType().Name.ToLowerInvariant(),
    };

    /// <summary>Publishes what the master looks like now (see <see cref="StatusBoard"/>).</summary>
    private StatusSnapshot Publish() =>
        _status.Publish(_config, _generation, _stopping ? "stopping" : _readyGeneration == 0 ? "starting" : _readyGeneration != _generation ? "reloading" : "serving",
            _winched, _targetWorkers, _workers, _stopping ? [] : _listeners, _draining);

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
                _notify.Reloading(Publish()); // systemd: RELOADING=1 now, READY=1 once the new generation serves
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
        if (signal == MasterSignals.Usr1)
        {
            Log.Information("Handling signal: USR1; reopening log files");
            Logging.Logging.Configure(_config, "");
            // A command worker's output already comes through the master; USR1 would kill most programs.
            foreach (var w in _workers.Where(w => w.Command is null)) Kill(w, Signum.SIGUSR1);
        }
        else if (signal == MasterSignals.Usr2)
        {
            Log.Information("Handling signal: USR2 (upgrade the program in place)");
            Upgrade();
        }
        return null;
    }

    /// <summary>
    /// HUP: re-read the config; if it is valid, start a new generation of workers. The old ones
    /// are retired one by one as their replacements report ready (see <see cref="ManageWorkers"/>).
    /// </summary>
    private string? Reload()
    {
        GatewayConfig next;
        try
        {
            next = ConfigLoader.Load(_configPath, _overrides);
            if (!next.Get(Settings.Bind).SequenceEqual(_config.Get(Settings.Bind))) Rebind(next.Get(Settings.Bind));
        }
        catch (Exception e) when (e is ConfigException or IOException or System.Net.Sockets.SocketException)
        {
            Log.Error("Reload refused, keeping the running configuration: {Reason}", e.Message);
            _notify.ReloadRefused(e.Message); // systemd: the reload is over
            return e.Message;
        }
        foreach (var s in Settings.All.Where(s => !s.Reloadable && ConfigLoader.FormatToml(next[s.Key]) != ConfigLoader.FormatToml(_config[s.Key])))
            Log.Warning("{Key} changed; it takes effect at the next start (or USR2), not on HUP", s.Key);
        _config = next;
        Logging.Logging.Configure(_config, "");
        _targetWorkers = next.Get(Settings.Workers);
        _generation++;
        _winched = false;
        _backoff.Reset();
        Log.Information("Reloaded configuration; starting generation {Generation} with {Workers} workers", _generation, _targetWorkers);
        DescribeWorkers(next);
        Hooks.Run(_config, Settings.OnReload, new Dictionary<string, string> { [WorkerEnvironment.EnvGeneration] = _generation.ToString() });
        _status.Reloaded();
        return null;
    }

    /// <summary>USR2: check the program on disk, then exec it in place; on any failure, go on serving and say why.</summary>
    private void Upgrade()
    {
        _notify.Reloading(Publish()); // systemd: the new image says READY=1 when its generation serves
        if (InPlaceUpgrade.Preflight(_configPath, _overrides) is { } why)
        {
            Log.Error("Upgrade refused, the running master goes on: {Reason}", why);
            _notify.ReloadRefused("upgrade refused: " + why);
            return;
        }
        var state = new InPlaceUpgrade.State(_generation,
            _listeners.Select(l => new InPlaceUpgrade.ListenerState(l.Address.Text, l.Fd)).ToList(),
            _workers.Where(w => !w.Retiring).Select(w => new InPlaceUpgrade.WorkerState(
                w.Pid, w.Index, w.Generation, w.PipeFd, w.Booted, w.Requests, w.MaxRequests, w.SpawnedAt, w.LastHeard,
                w.Command?.StopSignal.ToString(), w.Command?.ReadyDelaySeconds ?? 0, w.Watchdog)).ToList(),
            _workerNotify.Fd, _control?.Accepting.ListenerFd, _metrics?.Accepting.ListenerFd, _draining);
        // Workers already retiring are left to finish on their own; they exit when done.
        var own = new[] { _control?.Accepting, _metrics?.Accepting }.OfType<AcceptThread>().ToList();
        foreach (var a in own) a.PauseForExec(); // what they accepted would be cut off by the exec; the rest waits for the new image
        var failure = InPlaceUpgrade.Exec(state, _workers.Where(w => !w.Retiring).Select(w => w.PipeFd).Append(_workerNotify.Fd).Concat(own.Select(a => a.ListenerFd)));
        Logging.Logging.Configure(_config, "");
        foreach (var a in own) a.Resume();
        Log.Error("Upgrade failed, the running master goes on: {Reason}", failure);
        _notify.ReloadRefused("upgrade failed: " + failure);
    }

    /// <summary>After an upgrade: take over the previous image's workers, and start a generation of the new program.</summary>
    private void Adopt(InPlaceUpgrade.State state)
    {
        long now = _clock.GetTimestamp();
        foreach (var w in state.Workers)
        {
            Syscall.fcntl(w.PipeFd, FcntlCommand.F_SETFD, 1);
            _workers.Add(new WorkerHandle
            {
                Pid = w.Pid, Index = w.Index, Generation = w.Generation, PipeFd = w.PipeFd, MaxRequests = w.MaxRequests,
                SpawnedAt = w.SpawnedMonotonic ?? now, LastHeard = w.LastHeardMonotonic ?? now, Booted = w.Booted, Requests = w.Requests,
                Command = w.StopSignal is { } stop ? new CommandDetails(WorkerSpawner.Signal(stop), w.ReadyDelaySeconds) : null,
                Watchdog = w.Watchdog,
            });
        }
        _generation = state.Generation + 1;
        _readyGeneration = state.Generation;
        Log.Information("Adopted {Count} workers; starting generation {Generation} on the new program", state.Workers.Count, _generation);
    }

    // ---- the loop's steps ----------------------------------------------------------------

    /// <summary>Waits up to a second for a signal or a message from a worker, then reads the messages.</summary>
    private void Sleep()
    {
        var fds = new Pollfd[_workers.Count + 2];
        fds[0] = new Pollfd { fd = _wake.ReadFd, events = PollEvents.POLLIN };
        fds[1] = new Pollfd { fd = _workerNotify.Fd, events = PollEvents.POLLIN };
        for (int i = 0; i < _workers.Count; i++) // poll(2) skips a negative fd: an ended output pipe would wake it forever
            fds[i + 2] = new Pollfd { fd = _workers[i].Output?.Ended == true ? -1 : _workers[i].PipeFd, events = PollEvents.POLLIN };
        Syscall.poll(fds, _notify.SleepMs(1000)); // systemd: wake in time for the watchdog
        _wake.Drain();
        ReadAll();
    }

    /// <summary>Every worker's pipe, and the command workers' notify datagrams.</summary>
    private void ReadAll()
    {
        foreach (var w in _workers) ReadMessages(w);
        _workerNotify.Receive(pid => _workers.Any(w => w.Pid == pid && w.Command is not null),
            (pid, text) => OnNotify(_workers.First(w => w.Pid == pid), text));
    }

    private unsafe void ReadMessages(WorkerHandle w)
    {
        if (w.Output is { } output)
        {
            output.Read(w.PipeFd); // a command worker's pipe is its stdout and stderr
            return;
        }
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
        long now = _clock.GetTimestamp();
        w.Heard(now); // any line is a sign of life, even one this master does not understand
        switch (WorkerMessage.TryParse(line))
        {
            case WorkerMessage.Ready when w.OnReady(now):
                Booted(w, "");
                break;
            case WorkerMessage.Heartbeat beat:
                w.OnHeartbeat(beat, now);
                break;
            case WorkerMessage.BootFailure failure:
                w.BootFailed(failure.Reason);
                break;
        }
    }

    /// <summary>A command worker's sd_notify datagram.</summary>
    private void OnNotify(WorkerHandle w, string datagram)
    {
        var message = NotifyMessage.Parse(datagram);
        var status = w.Status;
        if (w.OnNotify(message, _clock.GetTimestamp())) Booted(w, " (READY=1)");
        if (message.Status is { } text && text != status) Log.Debug("{Worker} status: {Status}", w, text);
        if (message.Stopping) Log.Debug("{Worker} says it is stopping", w);
        if (message.WatchdogTrigger && w.State is not (WorkerState.Retiring or WorkerState.Condemned))
        {
            Log.Error("WORKER TIMEOUT: {Worker} asked to be treated as hung (WATCHDOG=trigger); aborting it", w);
            Condemn(w, Signum.SIGABRT);
        }
    }

    /// <summary>A worker reported ready (or, with `ready = "delay:N"`, has run N seconds).</summary>
    private void Booted(WorkerHandle w, string how)
    {
        _backoff.Booted();
        Log.Information("Booted {Worker}, generation {Generation}, in {Ms} ms{How}", w, w.Generation, (int)_clock.GetElapsedTime(w.SpawnedAt).TotalMilliseconds, how);
        Hooks.Run(_config, Settings.WorkerBoot, Hooks.WorkerDetails(w));
    }

    /// <summary>`ready = "delay:N"`: command workers that have run N seconds count as ready.</summary>
    private void AckDelayedWorkers()
    {
        foreach (var w in _workers)
            if (_supervision.ReadyByDelay(w) && w.OnReady(_clock.GetTimestamp())) Booted(w, $" (ready = \"delay:{w.Command!.ReadyDelaySeconds}\")");
    }

    /// <summary>Removes workers that have exited and says how each ended.</summary>
    private void Reap()
    {
        for (int i = _workers.Count - 1; i >= 0; i--)
        {
            var w = _workers[i];
            if (!w.HasExited(out int code, out int signal)) continue;
            ReadMessages(w); // a boot failure report (or a program's last words) may have arrived with the exit
            for (int more = 0; more < 15 && w.Output is { Ended: false }; more++) ReadMessages(w); // up to 1 MiB of last words
            w.Output?.Flush();
            _workers.RemoveAt(i);
            Syscall.close(w.PipeFd);
            w.Process?.Dispose();
            if (signal != 0) RuntimeLeftovers.Remove(w.Pid);
            string how = signal != 0 ? $"was killed by signal {signal} ({SignalName(signal)})" : $"exited with code {code}";
            var ending = Supervision.Ending(w, code, signal, _stopping);
            _status.Exited(w, _status.ExitReason(w, ending, _generation, _stopping));
            switch (ending)
            {
                case Ending.Retired:
                    Log.Information("{Worker} {How} (retired)", w, how);
                    break;
                case Ending.BootFailed:
                    var delay = _backoff.BootFailed();
                    Log.Error("{Worker} failed to boot and {How}: {Reason}. Boot failure {Count} in a row; next attempt in {Delay} s",
                        w, how, w.BootFailure ?? (w.Output?.LastLines is { } last ? "its last output: " + last
                            : w.Command is not null ? "it printed nothing" : "it sent no reason (crashed before it could; see its log)"),
                        _backoff.BootFailures, delay.TotalSeconds);
                    break;
                case Ending.KilledWhileBooting:
                    Log.Warning("{Worker} {How} while booting, which the master did not send; replacing it at once (not a boot failure)", w, how);
                    break;
                case Ending.KilledByOthers:
                    Log.Error("{Worker} {How}, which the master did not send: out of memory? (check dmesg). Replacing it", w, how);
                    break;
                default:
                    Log.Warning("{Worker} {How}; replacing it", w, how);
                    break;
            }
            var details = Hooks.WorkerDetails(w);
            details[signal != 0 ? "PREFORK_EXIT_SIGNAL" : "PREFORK_EXIT_CODE"] = (signal != 0 ? signal : code).ToString();
            Hooks.Run(_config, Settings.WorkerExit, details);
        }
    }

    /// <summary>
    /// Kills workers that overran `timeout` (silent for too long, or stuck on one request: ABRT,
    /// then KILL), those that did not boot within `worker_boot_timeout`, and retired ones past
    /// their grace.
    /// </summary>
    private void MurderWorkers()
    {
        foreach (var w in _workers)
        {
            if (w.SignalDue(_clock.GetTimestamp()) is { } due)
            {
                if (due == Signum.SIGKILL && w.Retiring)
                    Log.Warning("{Worker} did not finish within graceful_timeout ({Seconds} s); killing it", w, _config.Get(Settings.GracefulTimeout));
                Kill(w, due);
                continue;
            }
            var (verdict, seconds) = _supervision.Judge(w, _config);
            switch (verdict)
            {
                case Verdict.BootTimedOut:
                    var why = $"did not report ready within worker_boot_timeout ({_config.Get(Settings.WorkerBootTimeout)} s)" +
                              (w.Command is null ? "" : "; it must send READY=1 to $NOTIFY_SOCKET, or set ready = \"delay:SECONDS\" for a program that cannot");
                    w.BootFailed(why);
                    Log.Error("{Worker} {Reason}; killing it", w, why);
                    Condemn(w, Signum.SIGKILL);
                    break;
                case Verdict.RequestTimedOut:
                    Log.Error("WORKER TIMEOUT: {Worker} spent {Busy:F1} s on {Request} (timeout {Timeout} s); aborting it",
                        w, seconds, w.BusyRequest, _config.Get(Settings.Timeout));
                    Condemn(w, Signum.SIGABRT);
                    break;
                case Verdict.SilentTimedOut:
                    Log.Error("WORKER TIMEOUT: {Worker} silent for {Silent:F1} s (timeout {Timeout} s){Doing}; aborting it",
                        w, seconds, _config.Get(Settings.Timeout), w.BusyRequest.Length > 0 ? $", last seen serving {w.BusyRequest}" : ", idle when last heard");
                    Condemn(w, Signum.SIGABRT);
                    break;
            }
        }
    }

    /// <summary>Gives up on a worker: this signal now, KILL shortly after if it lingers. Its replacement is spawned at once.</summary>
    private void Condemn(WorkerHandle w, Signum signal)
    {
        if (!w.Condemn(_clock.After(Supervision.AbortGrace), abort: signal == Signum.SIGABRT)) return;
        Kill(w, signal);
        // The CLR swallows the first SIGABRT sent from outside and only restores the default
        // action (dotnet/runtime#99495); the second one aborts the process.
        if (signal == Signum.SIGABRT) { Thread.Sleep(20); Kill(w, signal); }
    }

    /// <summary>max_requests, max_worker_memory, max_worker_age: mark workers for replacement (they serve until it is ready).</summary>
    private void RecycleWorkers()
    {
        foreach (var w in _workers)
        {
            if (_supervision.RecycleReason(w, _config, _status.ResidentMiB) is { } reason && w.Recycle(reason))
                Log.Information("Recycling {Worker}: {Reason}", w, reason);
        }
    }

    /// <summary>
    /// Brings the workers to the target: for every index 0..N-1 one booted, current worker (of the
    /// current generation, not marked for recycling). A replacement is spawned first and the worker
    /// it replaces is retired only once the replacement reports ready, so capacity never dips.
    /// </summary>
    private void ManageWorkers()
    {
        var plan = Supervision.PlanWorkers(_workers, _targetWorkers, _winched, _generation);
        foreach (var (w, why) in plan.Retire) Retire(w, why);
        foreach (var index in plan.Spawn)
            if (_backoff.MaySpawn) Spawn(index);
        if (plan.AllReady && plan.Target > 0 && _readyGeneration != _generation)
        {
            bool first = _readyGeneration == 0;
            _readyGeneration = _generation;
            Log.Information("Ready: generation {Generation}, {Workers} workers serving", _generation, plan.Target);
            _notify.Ready(Publish()); // systemd: READY=1
            if (first) Hooks.Run(_config, Settings.WhenReady);
        }
    }

    private void Retire(WorkerHandle w, string why)
    {
        if (!w.Retire(_clock.After(TimeSpan.FromSeconds(_config.Get(Settings.GracefulTimeout))))) return;
        Log.Information("Retiring {Worker}: {Why}", w, why);
        _status.Retiring(w, _generation);
        Kill(w, w.StopSignal);
    }

    // ---- spawning --------------------------------------------------------------------------

    private void Spawn(int index)
    {
        if (_spawner.Spawn(_config, _listeners, index, _generation) is { } w)
        {
            _workers.Add(w);
            _status.Spawned();
        }
        else _backoff.SpawnFailed();
    }

    // ---- stopping ----------------------------------------------------------------------------

    /// <summary>
    /// TERM (graceful): workers stop accepting, finish in-flight requests and what waits in the
    /// accept queue, within graceful_timeout; then whatever is left is killed. INT/QUIT: at once.
    /// </summary>
    private int Stop(bool graceful)
    {
        _stopping = true; // every exit from now on is expected, a condemned worker's too
        _notify.Stopping(Publish()); // systemd: STOPPING=1
        // Stop accepting: the master's copies close now, so once the workers have drained the queue and
        // closed theirs, a new client is refused (safe for a proxy to retry) rather than accepted and reset.
        foreach (var l in _listeners) l.Dispose();
        long deadline = _clock.After(TimeSpan.FromSeconds(graceful ? _config.Get(Settings.GracefulTimeout) : 5));
        foreach (var w in _workers)
        {
            w.Retire(deadline); // this loop kills at the deadline itself
            Kill(w, graceful ? w.StopSignal : w.FastStopSignal);
        }
        while (_workers.Count > 0 && _clock.GetTimestamp() < deadline)
        {
            // INT or QUIT during a graceful stop hurries it up, as in Gunicorn.
            if (_commands.TryDequeue(out var more) && graceful && more is MasterCommand.Signal { Number: PosixSignal.SIGINT or PosixSignal.SIGQUIT } or MasterCommand.Stop { Quick: true })
            {
                graceful = false;
                more.Complete("stopping now (fast)");
                Log.Information("Handling {Command} during graceful stop; stopping fast", more is MasterCommand.Signal s ? "signal " + s.Number : "ctl stop --quick");
                foreach (var w in _workers) Kill(w, w.FastStopSignal);
                deadline = _clock.After(TimeSpan.FromSeconds(5));
            }
            Thread.Sleep(50);
            ReadAll();
            Reap();
            more?.Refuse("the master is stopping");
            _notify.Tick(Publish()); // systemd: keep the watchdog fed while workers finish
        }
        foreach (var w in _workers)
        {
            Log.Warning("{Worker} still running at shutdown; killing it", w);
            Kill(w, Signum.SIGKILL);
            w.Process?.WaitForExit(2000);
        }
        Hooks.WaitForBackground(TimeSpan.FromSeconds(10)); // the last worker_exit hooks come before on_exit
        Hooks.Run(_config, Settings.OnExit, wait: TimeSpan.FromSeconds(10));
        Cleanup();
        Log.Information("Shutting down: master {Pid} exits", Environment.ProcessId);
        return 0;
    }

    private void Cleanup()
    {
        foreach (var l in _listeners) l.Dispose();
        _workerNotify?.Dispose();
        _control?.Dispose();
        _metrics?.Dispose();
        _statsd?.Dispose();
        _pidFile?.Remove();
    }

    private static void Kill(WorkerHandle w, Signum signal)
    {
        if (Syscall.kill(w.Pid, signal) != 0 && Stdlib.GetLastError() != Errno.ESRCH)
            Log.Warning("kill({WorkerPid}, {Signal}) failed: {Error}", w.Pid, signal, Stdlib.GetLastError());
    }

    private static string SignalName(int signal) =>
        Enum.IsDefined(typeof(Signum), signal) ? ((Signum)signal).ToString() : "signal " + signal;
}
