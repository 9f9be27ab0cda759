using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>USR2: the master execs the program on disk in place, or refuses a broken one and goes on. Real processes, real signals.</summary>
public sealed class UpgradeTests
{
    [Fact]
    public void USR2_execs_the_program_on_disk_in_place_keeping_the_pid_and_serving_throughout()
    {
        // A private copy of the build, so the test can replace prefork.dll under the running master.
        var bin = CopyOfBuild();
        try
        {
            // A flag whose name is not its setting's key: the new program's check must get it as given.
            using var server = PreforkServer.Start(workers: 2, executable: Path.Combine(bin, "prefork"), args: ["--log-level", "info"]);
            var before = server.WaitForWorkers(2);
            var dll = Path.Combine(bin, "prefork.dll");
            File.Copy(dll, dll + ".new");
            File.Move(dll + ".new", dll, overwrite: true); // a new inode: the running master maps the old one
            Assert.Contains("prefork.dll (deleted)", File.ReadAllText($"/proc/{server.MasterPid}/maps"));

            // Load from before the USR2 until the new generation serves, however long that takes here.
            using var load = Wrk.Start(server.Port, connections: 20, seconds: 110, paceMs: 5);
            Assert.True(Wait.Until(() => Requests(server) > 0, TimeSpan.FromSeconds(30)), "no request served under load");
            server.Signal(Signum.SIGUSR2);
            server.WaitForLog("Upgraded in place to prefork", TimeSpan.FromSeconds(60));
            server.WaitForGeneration(2, TimeSpan.FromSeconds(60));
            var result = load.Stop();

            Assert.False(server.Master.HasExited);
            var maps = File.ReadAllText($"/proc/{server.MasterPid}/maps");
            Assert.Contains(dll, maps);
            Assert.DoesNotContain("prefork.dll (deleted)", maps); // the master now runs the program on disk
            server.WaitForWorkers(2, also: pids => !pids.Intersect(before).Any());
            Assert.True(result.Failures == 0, result.ToString());
            Assert.Equal(200, server.Get("/").Status);
        }
        finally { Directory.Delete(bin, recursive: true); }
    }

    [Fact]
    public void USR2_with_a_broken_program_on_disk_is_refused_and_the_master_goes_on()
    {
        var bin = CopyOfBuild();
        try
        {
            using var server = PreforkServer.Start(workers: 1, executable: Path.Combine(bin, "prefork"));
            var before = server.WaitForWorkers(1);
            File.WriteAllText(Path.Combine(bin, "prefork.dll"), "not an assembly");
            server.Signal(Signum.SIGUSR2);
            server.WaitForLog("Upgrade refused, the running master goes on", TimeSpan.FromSeconds(60));
            Assert.Equal(200, server.Get("/").Status);
            Assert.Equal(before, server.WorkerPids());
        }
        finally { Directory.Delete(bin, recursive: true); }
    }

    /// <summary>Requests the workers have reported to the master (with their heartbeats).</summary>
    private static long Requests(PreforkServer server) => server.Status()["counters"]!["requests"]!.GetValue<long>();

    /// <summary>A copy of the prefork the tests start (its published folder) in a fresh folder.</summary>
    private static string CopyOfBuild()
    {
        var dir = Directory.CreateTempSubdirectory("prefork-bin").FullName;
        CopyTree(Path.GetDirectoryName(PreforkServer.Executable)!, dir);
        File.SetUnixFileMode(Path.Combine(dir, "prefork"), (UnixFileMode)0b111_101_101);
        return dir;
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyTree(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
