using System.Diagnostics;
using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Bench;

/// <summary>
/// A real PostgreSQL (Debian's postgresql package: initdb and postgres from /usr/lib/postgresql/N/bin)
/// in a temp dir, listening only on a Unix socket there, with TechEmpower's hello_world database
/// (bench/techempower/create-postgres.sql). Stopped by pid (fast shutdown, then KILL) when disposed.
/// initdb and postgres refuse to run as root: as root every PostgreSQL program runs as the
/// `postgres` user through setpriv, which execs, so the process we start is the postmaster itself.
/// </summary>
public sealed class PostgresServer : IDisposable
{
    private const int Port = 5432; // only names the socket file, in our own directory
    private readonly Process? _postmaster;
    private readonly string _bin;

    public string Directory { get; }

    /// <summary>Npgsql's connection string of hello_world, over the socket.</summary>
    public string ConnectionString =>
        $"Host={Directory};Port={Port};Database=hello_world;Username=benchmarkdbuser;Password=benchmarkdbpass";

    public PostgresServer()
    {
        _bin = FindBin();
        Directory = Path.Combine(Path.GetTempPath(), "prefork-pg-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(Directory);
        try
        {
            if (IsRoot) Must(Repo.Run("chown", ["postgres:", Directory]), "chown");
            Must(Run("initdb", "-D", DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"), "initdb");
        }
        catch
        {
            Dispose(); // removes the directory
            throw;
        }

        var psi = new ProcessStartInfo(IsRoot ? "setpriv" : Path.Combine(_bin, "postgres"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Directory,
        };
        foreach (var a in AsOwner(Path.Combine(_bin, "postgres"), "-D", DataDir, "-k", Directory, "-p", Port.ToString(),
                     "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=50")[(IsRoot ? 1 : 0)..])
            psi.ArgumentList.Add(a);
        _postmaster = Process.Start(psi)!;
        _postmaster.BeginOutputReadLine();
        _postmaster.BeginErrorReadLine();
        try
        {
            if (!Wait.Until(() => Psql("postgres", "postgres", "-c", "SELECT 1").ExitCode == 0 || _postmaster.HasExited, TimeSpan.FromSeconds(60))
                || _postmaster.HasExited)
                throw new InvalidOperationException($"PostgreSQL did not accept connections on {Directory} within 60 s");
            Must(Psql("postgres", "postgres", "-c", "CREATE USER benchmarkdbuser WITH PASSWORD 'benchmarkdbpass'"), "CREATE USER");
            Must(Psql("postgres", "postgres", "-c",
                "CREATE DATABASE hello_world OWNER benchmarkdbuser ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0"), "CREATE DATABASE");
            Must(Psql("hello_world", "benchmarkdbuser", "-f", Repo.File("bench/techempower/create-postgres.sql")), "create-postgres.sql");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private static bool IsRoot => Syscall.getuid() == 0;

    private string DataDir => Path.Combine(Directory, "data");

    /// <summary>Debian's versioned directory of initdb/postgres (15 first: what the bench asks for).</summary>
    private static string FindBin()
    {
        var candidates = new[] { "/usr/lib/postgresql/15/bin" }
            .Concat(System.IO.Directory.Exists("/usr/lib/postgresql")
                ? System.IO.Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
                : []);
        return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")))
            ?? throw new InvalidOperationException("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql, as .ci/run does");
    }

    private string[] AsOwner(string program, params string[] args) =>
        IsRoot ? ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", program, .. args] : [program, .. args];

    private (int ExitCode, string Output) Run(string tool, params string[] args)
    {
        var argv = AsOwner(Path.Combine(_bin, tool), args);
        return Repo.Run(argv[0], argv[1..], Directory, TimeSpan.FromSeconds(120));
    }

    private (int ExitCode, string Output) Psql(string database, string user, params string[] args) =>
        Run("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", Directory, "-p", Port.ToString(), "-U", user, "-d", database, .. args]);

    private static void Must((int ExitCode, string Output) result, string what)
    {
        if (result.ExitCode != 0) throw new InvalidOperationException($"{what} failed ({result.ExitCode}): {result.Output}");
    }

    public void Dispose()
    {
        if (_postmaster is not null && !_postmaster.HasExited)
        {
            Syscall.kill(_postmaster.Id, Signum.SIGINT); // fast shutdown
            if (!_postmaster.WaitForExit(30_000)) _postmaster.Kill();
            _postmaster.WaitForExit();
        }
        _postmaster?.Dispose();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}
