using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// PreforkHost: the sample app linked into Prefork as one executable (src/Prefork.SampleAot). Its JIT
/// build runs here as a real master; the NativeAOT publish of the same program is measured in bench/aot.sh.
/// </summary>
public sealed class PreforkHostTests
{
    private static string Executable => Path.Combine(AppContext.BaseDirectory, "prefork-sample");

    [Fact]
    public void One_executable_is_the_master_and_every_worker_and_serves_the_linked_app()
    {
        // An `app` naming nothing loadable: workers that loaded by name would fail to boot; the linked app is served instead.
        using var server = PreforkServer.Start("app = \"NoSuchAssembly:NoSuch.App\"", workers: 2, executable: Executable);
        var workers = server.WaitForWorkers(2);

        var hello = server.Get("/");
        Assert.Equal(200, hello.Status);
        Assert.Equal("Hello, World!", hello.BodyText);
        Assert.Contains(ServedBy.Parse(server.Get("/pid")).Pid, workers);

        // Workers are this same file started again (Environment.ProcessPath), not the prefork CLI.
        var file = Path.GetFullPath(Executable);
        Assert.Equal(file, ExecutableOf(server.MasterPid));
        foreach (var pid in workers) Assert.Equal(file, ExecutableOf(pid));
        // The linked app stands as `app` (ASSEMBLY:TYPE), whatever the config said.
        server.AssertLogged("app Prefork.SampleApp:Prefork.SampleApp.SampleApplication");
        Assert.DoesNotContain("NoSuchAssembly", server.Log);
    }

    private static string? ExecutableOf(int pid) => new FileInfo($"/proc/{pid}/exe").LinkTarget;
}
