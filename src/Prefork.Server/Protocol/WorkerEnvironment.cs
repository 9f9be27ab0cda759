namespace Prefork.Protocol;

/// <summary>
/// The names the master puts in a worker's environment: the master's spawner writes them, the worker
/// process reads them at boot, hooks get the same ones, and applications may read them too.
/// Prefork.AspNetCore spells those it reads again (it does not reference the server).
/// </summary>
public static class WorkerEnvironment
{
    // Every worker
    public const string EnvMasterPid = "PREFORK_MASTER_PID";
    public const string EnvWorkerIndex = "PREFORK_WORKER_INDEX";
    public const string EnvGeneration = "PREFORK_GENERATION";

    // Gateway workers (this program in worker mode)
    public const string EnvListenFds = "PREFORK_LISTEN_FDS";
    public const string EnvPipeFd = "PREFORK_PIPE_FD";
    public const string EnvConfig = "PREFORK_CONFIG"; // see ConfigHandOff
    public const string EnvConfigPath = "PREFORK_CONFIG_PATH";
    public const string EnvSecretsFd = "PREFORK_SECRETS_FD"; // see ConfigHandOff: secrets go through a pipe, not the environment

    // Command workers (besides systemd's LISTEN_FDS and NOTIFY_SOCKET)
    public const string EnvBacklog = "PREFORK_BACKLOG", EnvGracefulTimeout = "PREFORK_GRACEFUL_TIMEOUT";
}
