using System.Diagnostics;
using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Systemd;
using Prefork.Worker;
using Serilog;

namespace Prefork.Master;

/// <summary>
/// What a worker process runs. Every kind gets the same spawn (see <see cref="WorkerSpawner"/>):
/// the listening sockets, a pipe to the master, its index and generation, `raw_env`. A kind adds
/// its program and what else it needs.
/// </summary>
internal interface IWorkerKind
{
    /// <summary>The program and its arguments.</summary>
    ProcessStartInfo Program();
    /// <summary>What else this kind needs in its environment; set last, so `raw_env` cannot override it.</summary>
    void AddEnvironment(IDictionary<string, string?> environment, GatewayConfig config);
}

/// <summary>This program in worker mode, serving the app through the gateway interface.</summary>
internal sealed class GatewayWorker : IWorkerKind
{
    public static readonly GatewayWorker Instance = new();

    public ProcessStartInfo Program() => ServerInfo.StartInfo(ServerInfo.WorkerFlag);

    public void AddEnvironment(IDictionary<string, string?> environment, GatewayConfig config)
    {
        environment[WorkerProcess.EnvConfig] = config.HandOff; // see ConfigHandOff
        environment[WorkerProcess.EnvConfigPath] = config.FilePath is null ? "" : Path.GetFullPath(config.FilePath);
    }
}

/// <summary>Starts worker processes: the one place that builds a worker's start info and environment.</summary>
internal sealed class WorkerSpawner(TimeProvider clock)
{
    /// <summary>What the config's workers run. One kind for now; command workers will be another.</summary>
    public static IWorkerKind KindOf(GatewayConfig config) => GatewayWorker.Instance;

    /// <summary>Starts worker <paramref name="index"/> of <paramref name="generation"/>; null (logged) when it could not be started.</summary>
    public WorkerHandle? Spawn(GatewayConfig config, IEnumerable<int> listenFds, int index, int generation)
    {
        if (Syscall.pipe(out int readFd, out int writeFd) != 0)
        {
            Log.Error("pipe() failed: {Error}", Stdlib.GetLastError());
            return null;
        }
        Syscall.fcntl(readFd, FcntlCommand.F_SETFD, 1); // FD_CLOEXEC: only the master reads it
        Syscall.fcntl(readFd, FcntlCommand.F_SETFL, Syscall.fcntl(readFd, FcntlCommand.F_GETFL) | (int)OpenFlags.O_NONBLOCK);
        Syscall.fcntl(writeFd, FcntlCommand.F_SETFD, 0); // inherited by this one worker; closed here right after
        try
        {
            var kind = KindOf(config);
            var psi = kind.Program();
            SocketActivation.RemoveFromWorkerEnvironment(psi.Environment); // systemd: LISTEN_*, NOTIFY_SOCKET are the master's
            foreach (var pair in config.RawEnv) psi.Environment[pair[..pair.IndexOf('=')]] = pair[(pair.IndexOf('=') + 1)..];
            psi.Environment[WorkerProcess.EnvListenFds] = string.Join(",", listenFds);
            psi.Environment[WorkerProcess.EnvPipeFd] = writeFd.ToString();
            psi.Environment[WorkerProcess.EnvMasterPid] = Environment.ProcessId.ToString();
            psi.Environment[WorkerProcess.EnvWorkerIndex] = index.ToString();
            psi.Environment[WorkerProcess.EnvGeneration] = generation.ToString();
            kind.AddEnvironment(psi.Environment, config);
            var process = Process.Start(psi)!;
            long maxRequests = config.MaxRequests == 0 ? 0 : config.MaxRequests + Random.Shared.NextInt64(config.MaxRequestsJitter + 1);
            long now = clock.GetTimestamp();
            Log.Debug("Spawned worker {Index} (pid {Pid}), generation {Generation}", index, process.Id, generation);
            return new WorkerHandle
            {
                Process = process, Pid = process.Id, Index = index, Generation = generation, PipeFd = readFd, MaxRequests = maxRequests,
                SpawnedAt = now, LastHeard = now,
            };
        }
        catch (Exception e)
        {
            Log.Error("Could not start a worker process: {Reason}", e.Message);
            Syscall.close(readFd);
            return null;
        }
        finally
        {
            Syscall.close(writeFd);
        }
    }
}
