using Mono.Unix.Native;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// The master under a wall clock that jumps, as NTP fixing a dead RTC or an operator's `date -s`
/// would make it: Debian's libfaketime, preloaded, moves CLOCK_REALTIME by an offset read from a
/// file at every read, and leaves CLOCK_MONOTONIC alone.
/// </summary>
[LongClass]
public sealed class ClockStepTests
{
    private const string LibFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"; // Debian's libfaketime

    [Fact]
    public void A_wall_clock_step_forward_condemns_no_worker_and_a_step_back_does_not_disable_timeout()
    {
        Assert.True(File.Exists(LibFaketime), "libfaketime is missing: apt-get install faketime (.ci/run does)");
        var offset = Path.Combine(Path.GetTempPath(), $"prefork-clock-{Guid.NewGuid():N}");
        File.WriteAllText(offset, "+0");
        try
        {
            // Only the master's clock steps: raw_env empties LD_PRELOAD for the workers. Debug logs
            // say when the master spawns, the last step of its loop pass.
            using var server = PreforkServer.Start("timeout = 10\nloglevel = \"debug\"\nraw_env = [\"LD_PRELOAD=\"]", workers: 2,
                environment: new Dictionary<string, string>
                {
                    ["LD_PRELOAD"] = LibFaketime,
                    ["FAKETIME_TIMESTAMP_FILE"] = offset,
                    ["FAKETIME_NO_CACHE"] = "1",           // read the offset at every clock read
                    ["FAKETIME_DONT_FAKE_MONOTONIC"] = "1", // only the wall clock jumps
                });
            var serving = server.WaitForWorkers(2);
            int frozen = serving[0];
            Syscall.kill(frozen, Signum.SIGSTOP); // silent from now on: its last heartbeat is at most a second old

            File.WriteAllText(offset, "+7200"); // two hours forward
            // TTIN makes a loop pass that judges every worker and then spawns one: a master timing by
            // the wall clock would find the frozen worker silent for two hours.
            server.Signal(Signum.SIGTTIN);
            server.WaitForLog("Spawned worker 2 (pid", TimeSpan.FromSeconds(20));
            Assert.DoesNotContain("WORKER TIMEOUT", server.Log);

            File.WriteAllText(offset, "-3600"); // and back, to an hour before it started
            // The frozen worker must still be aborted once silent for `timeout`, not an hour later.
            server.WaitForLog("WORKER TIMEOUT", TimeSpan.FromSeconds(40));
            Assert.Matches($@"WORKER TIMEOUT: worker \d \(pid {frozen}\) silent for 1\d\.\d s \(timeout 10 s\)", server.Log);
            server.WaitForWorkers(3, TimeSpan.FromSeconds(60), also: p => !p.Contains(frozen)); // KILLed and replaced
        }
        finally
        {
            File.Delete(offset);
        }
    }
}
