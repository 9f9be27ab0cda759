namespace Prefork.Tests.Support;

/// <summary>
/// Masters that the tests of one class share, one per config: started on first use, stopped by pid
/// when the class's last test is done (xunit runs one class's tests one after another). For tests
/// that only send requests and leave the server as they found it; a test that kills, signals or
/// reconfigures starts its own. Starting a master and its worker costs ~0.8 s of CPU, the suite's
/// largest cost.
/// </summary>
public sealed class SharedServers : IDisposable
{
    private readonly Dictionary<(string Toml, int Workers), PreforkServer> _started = [];

    /// <summary>The class's master for this config, started now if it is the first test to ask.</summary>
    public PreforkServer Get(string toml = "", int workers = 1)
    {
        lock (_started)
        {
            if (!_started.TryGetValue((toml, workers), out var server))
                _started[(toml, workers)] = server = PreforkServer.Start(toml, workers);
            else if (server.Master.HasExited)
                throw new InvalidOperationException($"the shared master exited during an earlier test. Log:\n{server.Log}");
            return server;
        }
    }

    public void Dispose()
    {
        foreach (var server in _started.Values) server.Dispose();
    }
}
