using Prefork.Tests.Support;

namespace Prefork.Tests.Control;

/// <summary>`reload = true`: a rebuilt app (or a changed extra file) rolls the workers, readiness-gated, with no signal sent.</summary>
public sealed class ReloadOnChangeTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public void A_rebuilt_app_assembly_and_a_changed_extra_file_each_start_a_new_generation()
    {
        var dir = Path.Combine(Path.GetTempPath(), "prefork-reload-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var dll = Path.Combine(dir, "Prefork.SampleApp.dll");
            File.Copy(Path.Combine(AppContext.BaseDirectory, "Prefork.SampleApp.dll"), dll);
            var extra = Path.Combine(dir, "settings.json");
            File.WriteAllText(extra, "{}");
            using var server = PreforkServer.Start(
                $"app = \"{dll}:Prefork.SampleApp.SampleApplication\"\nreload = true\nreload_extra_files = [\"{extra}\"]", workers: 2);
            var first = server.WaitForWorkers(2);

            // "Rebuild": a new file in place of the old one, as a build writes it.
            File.Copy(Path.Combine(AppContext.BaseDirectory, "Prefork.SampleApp.dll"), dll + ".new");
            File.SetLastWriteTimeUtc(dll + ".new", DateTime.UtcNow.AddSeconds(5));
            File.Move(dll + ".new", dll, overwrite: true);
            server.WaitForLog($"reload = true: {dll} changed; reloading", Bound);
            server.WaitForGeneration(2, Bound);
            var second = server.WaitForWorkers(2, Bound, now => !now.Intersect(first).Any());
            Assert.Equal(200, server.Get("/").Status);

            File.WriteAllText(extra, "{\"changed\": true}");
            server.WaitForLog($"reload = true: {extra} changed; reloading", Bound);
            server.WaitForGeneration(3, Bound);
            Assert.Equal(3, server.Status()["generation"]!.GetValue<int>()); // one change, one reload
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
