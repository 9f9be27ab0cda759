using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Prefork.Tests.Support;

/// <summary>What wrk reported: how many requests, and every kind of failure it counts.</summary>
public sealed record WrkResult(long Requests, long ConnectErrors, long ReadErrors, long WriteErrors, long Timeouts, long Non2xx, string Output)
{
    public long Failures => ConnectErrors + ReadErrors + WriteErrors + Timeouts + Non2xx;
    public override string ToString() => $"{Requests} requests, {Failures} failed (connect {ConnectErrors}, read {ReadErrors}, write {WriteErrors}, timeout {Timeouts}, non-2xx {Non2xx})";
}

/// <summary>Runs Debian's wrk against 127.0.0.1 for a bounded time, in the background, and parses its counts.</summary>
public sealed partial class Wrk : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _output;

    private Wrk(Process process)
    {
        _process = process;
        _output = process.StandardOutput.ReadToEndAsync();
    }

    /// <summary>
    /// Starts wrk. With <paramref name="paceMs"/>, each connection waits that long between requests
    /// (wrk's Lua <c>delay</c>): steady traffic on every connection, keep-alive included, for tests that
    /// need load across an event rather than the most requests a second. Unpaced, wrk and the server take
    /// whatever CPU the tests running beside leave.
    /// </summary>
    public static Wrk Start(int port, int connections, int seconds, string scheme = "http", int paceMs = 0)
    {
        // At nice 10 (nice execs wrk, so the pid is wrk's): the servers under test, and the tests running
        // beside, get the CPU first; wrk takes what they leave, which on an idle machine is all of it.
        var psi = new ProcessStartInfo("nice") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, ArgumentList = { "-n", "10", "wrk" } };
        string[] pace = paceMs > 0 ? ["-s", Path.Combine(AppContext.BaseDirectory, "pace.lua")] : [];
        string[] paceArgs = paceMs > 0 ? ["--", paceMs.ToString()] : []; // the script's, after the URL
        foreach (var a in (string[])["-t2", $"-c{connections}", $"-d{seconds}s", "--timeout", "10s", .. pace, $"{scheme}://127.0.0.1:{port}/", .. paceArgs])
            psi.ArgumentList.Add(a);
        return new Wrk(Process.Start(psi) ?? throw new InvalidOperationException("wrk did not start (apt-get install wrk)"));
    }

    /// <summary>
    /// Ends the run now (SIGINT: wrk stops and prints its counts, as on Ctrl-C) and returns them: for a
    /// test that holds load across something that takes as long as it takes, started with a generous duration.
    /// </summary>
    public WrkResult Stop()
    {
        if (!_process.HasExited) Mono.Unix.Native.Syscall.kill(_process.Id, Mono.Unix.Native.Signum.SIGINT);
        return Wait();
    }

    public WrkResult Wait()
    {
        if (!_process.WaitForExit(120_000)) { _process.Kill(); throw new TimeoutException("wrk did not finish"); }
        var text = _output.Result;
        long Find(Regex re) => re.Match(text) is { Success: true } m ? long.Parse(m.Groups[1].Value) : 0;
        var errors = SocketErrors().Match(text);
        return new WrkResult(
            Find(RequestsLine()),
            errors.Success ? long.Parse(errors.Groups[1].Value) : 0,
            errors.Success ? long.Parse(errors.Groups[2].Value) : 0,
            errors.Success ? long.Parse(errors.Groups[3].Value) : 0,
            errors.Success ? long.Parse(errors.Groups[4].Value) : 0,
            Find(Non2xx()),
            text);
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill();
        _process.Dispose();
    }

    [GeneratedRegex(@"(\d+) requests in")] private static partial Regex RequestsLine();
    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")] private static partial Regex SocketErrors();
    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")] private static partial Regex Non2xx();
}
