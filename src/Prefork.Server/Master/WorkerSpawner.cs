using System.Collections;
using System.Diagnostics;
using System.Globalization;
using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Interop;
using Prefork.Protocol;
using Prefork.Systemd;
using Serilog;

namespace Prefork.Master;

/// <summary>
/// Starts worker processes: the one place that builds a worker's program, fds and environment.
/// Two kinds: gateway workers (this program in worker mode, serving the app through the gateway
/// interface, talking to the master over a pipe) and command workers (any program, given its
/// sockets and its notify socket the systemd way; see <see cref="SpawnCommand"/>).
/// </summary>
internal sealed class WorkerSpawner(TimeProvider clock, NotifySocket notify)
{
    /// <summary>Starts worker <paramref name="index"/> of <paramref name="generation"/>; null (logged) when it could not be started.</summary>
    public WorkerHandle? Spawn(GatewayConfig config, IReadOnlyList<Listener> listeners, int index, int generation)
    {
        try
        {
            var (pid, process, pipeFd) = config.RunsCommand ? SpawnCommand(config, listeners, index, generation) : SpawnGateway(config, listeners, index, generation);
            long maxRequests = config.Get(Settings.MaxRequests) is > 0 and var max ? max + Random.Shared.NextInt64(config.Get(Settings.MaxRequestsJitter) + 1) : 0;
            long now = clock.GetTimestamp();
            Log.Debug("Spawned worker {Index} (pid {WorkerPid}), generation {Generation}", index, pid, generation); // not {Pid}: the line's own (the master's)
            return new WorkerHandle
            {
                Process = process, Pid = pid, Index = index, Generation = generation, PipeFd = pipeFd, MaxRequests = maxRequests,
                SpawnedAt = now, LastHeard = now,
                Command = config.RunsCommand ? new CommandDetails(Signal(config.Get(Settings.StopSignal)), config.ReadyDelaySeconds ?? 0) : null,
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            Log.Error("Could not start a worker process: {Reason}", e.Message);
            return null;
        }
    }

    /// <summary>The environment every worker starts from: the master's, without what is the master's alone.</summary>
    private static Dictionary<string, string> BaseEnvironment(GatewayConfig config, int index, int generation)
    {
        var environment = new Dictionary<string, string>();
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables()) environment[(string)e.Key] = (string?)e.Value ?? "";
        SocketActivation.RemoveFromWorkerEnvironment(environment); // systemd: LISTEN_*, NOTIFY_SOCKET are the master's
        foreach (var pair in config.Get(Settings.RawEnv)) environment[pair[..pair.IndexOf('=')]] = pair[(pair.IndexOf('=') + 1)..];
        environment.Remove(ConfigHandOff.EnvKeyFilePassword); // a secret: handed over in a pipe (see ConfigHandOff), never in the environment
        environment[WorkerEnvironment.EnvMasterPid] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        environment[WorkerEnvironment.EnvWorkerIndex] = index.ToString(CultureInfo.InvariantCulture);
        environment[WorkerEnvironment.EnvGeneration] = generation.ToString(CultureInfo.InvariantCulture);
        return environment;
    }

    // ---- gateway workers -------------------------------------------------------------------------

    /// <summary>This program with the worker flag; the listening fds and a pipe to the master inherited at their own numbers.</summary>
    private static (int Pid, Process? Process, int PipeFd) SpawnGateway(GatewayConfig config, IReadOnlyList<Listener> listeners, int index, int generation)
    {
        var (readFd, writeFd) = MasterPipe();
        int secretsFd = -1;
        try
        {
            Syscall.fcntl(writeFd, FcntlCommand.F_SETFD, 0); // inherited by this one worker; closed here right after
            if (ConfigHandOff.WriteSecrets(config) is { } secrets) secretsFd = SecretsPipe(secrets);
            var psi = ServerInfo.StartInfo(ServerInfo.WorkerFlag);
            psi.Environment.Clear();
            foreach (var (key, value) in BaseEnvironment(config, index, generation)) psi.Environment[key] = value;
            SetGen0Budget(config, psi.Environment);
            psi.Environment[WorkerEnvironment.EnvListenFds] = string.Join(",", listeners.Select(l => l.Fd));
            psi.Environment[WorkerEnvironment.EnvPipeFd] = writeFd.ToString(CultureInfo.InvariantCulture);
            psi.Environment[WorkerEnvironment.EnvConfig] = config.HandOff; // see ConfigHandOff
            psi.Environment[WorkerEnvironment.EnvConfigPath] = config.FilePath is null ? "" : Path.GetFullPath(config.FilePath);
            if (secretsFd >= 0) psi.Environment[WorkerEnvironment.EnvSecretsFd] = secretsFd.ToString(CultureInfo.InvariantCulture);
            var process = Process.Start(psi)!;
            return (process.Id, process, readFd);
        }
        catch
        {
            Syscall.close(readFd);
            throw;
        }
        finally
        {
            Syscall.close(writeFd);
            if (secretsFd >= 0) Syscall.close(secretsFd);
        }
    }

    /// <summary>The gen0 budget a gateway worker gets unless its environment (the master's, or raw_env) sets one.</summary>
    private const string Gen0SizeVariable = "DOTNET_GCgen0size", Gen0SizeDefault = "0x2000000"; // 32 MiB

    /// <summary>
    /// Workers run workstation GC (one small heap per process), whose gen0 budget follows the CPU
    /// cache: about 2.4 MB on the 2-core bench VM. An epoll worker holds hundreds of requests in
    /// flight; with that budget it took 0.5–0.7 page faults per TechEmpower fortunes request at 256
    /// connections, in the GC's allocator (as we read it, each collection moved on to fresh memory),
    /// about 30 % of the worker's CPU (bench/results/techempower-2026-12-03-vm-gen0.md). With
    /// 32 MiB there are none, for up to that much more RSS in a busy worker. The sync and threads
    /// classes hold one request per thread and keep the runtime's default, and their smaller workers.
    /// </summary>
    private static void SetGen0Budget(GatewayConfig config, IDictionary<string, string?> environment)
    {
        if (config.Get(Settings.WorkerClass) != "epoll") return;
        if (environment.ContainsKey(Gen0SizeVariable) || environment.ContainsKey("COMPlus_GCgen0size")) return;
        environment[Gen0SizeVariable] = Gen0SizeDefault;
    }

    /// <summary>
    /// A pipe holding <paramref name="secrets"/>, its write end already closed: the read end, which the
    /// next worker inherits (like its master pipe) and reads to the end at boot.
    /// </summary>
    private static unsafe int SecretsPipe(string secrets)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(secrets);
        var (read, write) = Pipe();
        try
        {
            // Never blocks: nobody reads yet, so what the pipe cannot hold at once (64 KiB) is an error, not a wait.
            SetNonBlocking(write);
            nint written;
            fixed (byte* p = bytes) written = Native.write(write, p, bytes.Length);
            if (written != bytes.Length) throw new IOException($"could not hand the secrets ({bytes.Length} bytes) to the worker: {Stdlib.GetLastError()}");
        }
        catch
        {
            Syscall.close(read);
            throw;
        }
        finally
        {
            Syscall.close(write);
        }
        Syscall.fcntl(read, FcntlCommand.F_SETFD, 0); // inherited by this one worker; closed here right after
        return read;
    }

    // ---- command workers -------------------------------------------------------------------------

    /// <summary>
    /// Runs `command` with systemd's socket protocol: the listening sockets at fd 3, 4, … in bind
    /// order, LISTEN_FDS and LISTEN_FDNAMES; NOTIFY_SOCKET (and WATCHDOG_USEC from `timeout`) for
    /// READY=1 and heartbeats; stdout and stderr on one pipe the master logs line by line; stdin
    /// /dev/null; no other fd.
    /// LISTEN_PID must be the worker's own pid, which no parent knows before the child exists.
    /// posix_spawn places the fds (see <see cref="Spawn"/>); it starts /bin/sh, whose `$$` is that
    /// pid and stays it through `exec`: `export LISTEN_PID=$$; exec "$@"`. (Debian's dash can only
    /// move single-digit fds, which is why the fds are placed by posix_spawn and not by the shell.)
    /// With `user`/`group`, setpriv(1) changes identity between the shell and the program, keeping the pid too.
    /// </summary>
    private (int Pid, Process? Process, int PipeFd) SpawnCommand(GatewayConfig config, IReadOnlyList<Listener> listeners, int index, int generation)
    {
        int firstFree = SocketActivation.FirstFd + listeners.Count; // fds below it are the child's; copies go above
        var (readFd, writeFd) = MasterPipe();
        var copies = new List<int>();
        try
        {
            int output = CopyAbove(writeFd, firstFree, copies);
            var fds = new List<(int From, int To)> { (output, 1), (output, 2) };
            for (int i = 0; i < listeners.Count; i++) fds.Add((CopyAbove(listeners[i].Fd, firstFree, copies), SocketActivation.FirstFd + i));

            var environment = BaseEnvironment(config, index, generation);
            environment[SocketActivation.EnvListenFds] = listeners.Count.ToString(CultureInfo.InvariantCulture);
            environment[SocketActivation.EnvListenFdNames] = string.Join(":", FdNames(config, listeners));
            environment[SystemdNotifier.EnvNotifySocket] = notify.Address;
            if (config.Get(Settings.Timeout) > 0) environment[SystemdNotifier.EnvWatchdogUsec] = (config.Get(Settings.Timeout) * 1_000_000L).ToString(CultureInfo.InvariantCulture);
            environment[WorkerEnvironment.EnvBacklog] = config.Get(Settings.Backlog).ToString(CultureInfo.InvariantCulture);
            environment[WorkerEnvironment.EnvGracefulTimeout] = config.Get(Settings.GracefulTimeout).ToString(CultureInfo.InvariantCulture);
            environment.Remove("ENV"); // read by an interactive sh only, but never let it run code before the program
            environment.Remove("BASH_ENV");

            string script = config.Get(Settings.Timeout) > 0 ? "export LISTEN_PID=$$ WATCHDOG_PID=$$; exec \"$@\"" : "export LISTEN_PID=$$; exec \"$@\"";
            var argv = new List<string> { "sh", "-c", script, "prefork-worker" }; // "prefork-worker" is $0: sh names itself so in its errors
            argv.AddRange(IdentityChange(config));
            argv.AddRange(config.Get(Settings.Command));
            int pid = Interop.Spawn.Start("/bin/sh", argv, environment.Select(e => $"{e.Key}={e.Value}").ToList(), WorkingDirectory(config), fds);
            return (pid, null, readFd);
        }
        catch
        {
            Syscall.close(readFd);
            throw;
        }
        finally
        {
            Syscall.close(writeFd);
            foreach (var fd in copies) Syscall.close(fd);
        }
    }

    /// <summary>Where a command worker runs: `chdir`, else the config file's folder (so relative paths in `command` work from there).</summary>
    public static string WorkingDirectory(GatewayConfig config) =>
        config.Get(Settings.Chdir) is { Length: > 0 } chdir ? Path.GetFullPath(chdir, config.BaseDirectory) : config.BaseDirectory;

    /// <summary>LISTEN_FDNAMES: listen_fdnames in order, then each remaining socket named after its address.</summary>
    public static IEnumerable<string> FdNames(GatewayConfig config, IReadOnlyList<Listener> listeners)
    {
        var names = config.Get(Settings.ListenFdNames);
        return listeners.Select((l, i) => i < names.Count ? names[i] : FdNameOf(l.Address.Text));
    }

    /// <summary>A bind address as a valid fd name: ':' (the separator) made '_', other bytes kept if printable.</summary>
    public static string FdNameOf(string address)
    {
        var name = new string(address.Select(c => c == ':' || c <= ' ' || c >= '\x7f' ? '_' : c).ToArray());
        return name.Length > 255 ? name[..255] : name;
    }

    /// <summary>`user`/`group` for a program we cannot ask to drop privileges itself: setpriv(1) does it, then execs it.</summary>
    private static IEnumerable<string> IdentityChange(GatewayConfig config) =>
        Libc.ResolveIdentity(config.Get(Settings.User), config.Get(Settings.Group)) is var (uid, gid)
            ? ["setpriv", $"--reuid={uid}", $"--regid={gid}", $"--groups={gid}", "--"] // the groups gateway workers keep: their gid alone
            : [];

    /// <summary>A pipe whose both ends close on exec (nothing leaks into a process spawned meanwhile: hooks run on other threads); the read end non-blocking.</summary>
    /// <summary>A pipe, both ends close-on-exec (the one a worker inherits is made inheritable for it alone).</summary>
    private static unsafe (int Read, int Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (Native.pipe2(fds, Native.O_CLOEXEC) != 0) throw new IOException($"pipe2() failed: {Stdlib.GetLastError()}");
        return (fds[0], fds[1]);
    }

    /// <summary>A worker's pipe to the master: the master's end never blocks, the loop reads what is there and goes on.</summary>
    private static (int Read, int Write) MasterPipe()
    {
        var (read, write) = Pipe();
        SetNonBlocking(read);
        return (read, write);
    }

    private static void SetNonBlocking(int fd) =>
        Syscall.fcntl(fd, FcntlCommand.F_SETFL, Syscall.fcntl(fd, FcntlCommand.F_GETFL) | (int)OpenFlags.O_NONBLOCK);

    /// <summary>A close-on-exec copy of <paramref name="fd"/> numbered at least <paramref name="min"/>, so the child's dup2s cannot clobber it.</summary>
    private static int CopyAbove(int fd, int min, List<int> copies)
    {
        int copy = Native.fcntl(fd, Native.F_DUPFD_CLOEXEC, min);
        if (copy < 0) throw new IOException($"fcntl(F_DUPFD_CLOEXEC) on fd {fd}: {Stdlib.GetLastError()}");
        copies.Add(copy);
        return copy;
    }

    /// <summary>A signal by name, with or without SIG: "TERM" (stop_signal), "SIGTERM" (Signum.ToString).</summary>
    public static Signum Signal(string name) => Enum.Parse<Signum>(name.StartsWith("SIG", StringComparison.Ordinal) ? name : "SIG" + name);
}
