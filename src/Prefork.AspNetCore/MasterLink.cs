using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Prefork.AspNetCore;

/// <summary>
/// This worker's side of the conversation with the Prefork master, over NOTIFY_SOCKET: READY=1 once
/// the app serves, a heartbeat every second (WATCHDOG=1 and what the worker is doing), STOPPING=1
/// when it begins to stop. The heartbeat runs on a thread of its own so that a starved thread pool
/// still reports the request it is stuck on; and it stops the app when the master is gone, so no
/// orphan keeps serving the port.
/// </summary>
internal sealed class MasterLink(PreforkEnvironment prefork, RequestTracker tracker, IHostApplicationLifetime lifetime, ILogger<MasterLink> log)
    : IHostedLifecycleService, IDisposable
{
    public const int MaxPathLength = 200, MaxMethodLength = 32;

    private readonly Notifier? _notifier = prefork.NotifySocket is { } name ? new Notifier(name) : null;
    private readonly ManualResetEventSlim _stopped = new();
    private bool _sendFailed, _orphaned;

    /// <summary>Once a second, and at least twice per watchdog interval (systemd's convention).</summary>
    public TimeSpan Interval { get; } = prefork.Watchdog is { } w && w / 2 < TimeSpan.FromSeconds(1) ? w / 2 : TimeSpan.FromSeconds(1);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() =>
        {
            log.LogInformation("Serving under Prefork as {Worker}", prefork);
            Send("READY=1");
            new Thread(Heartbeat) { IsBackground = true, Name = "prefork-heartbeat" }.Start();
        });
        lifetime.ApplicationStopping.Register(() => Send("STOPPING=1"));
        lifetime.ApplicationStopped.Register(_stopped.Set);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Before Kestrel stops (this runs before any hosted service's StopAsync): a short drain in which
    /// every answer closes its keep-alive connection. Kestrel's own stop closes idle keep-alive
    /// connections at once, and a client that was just then sending its next request on one sees the
    /// connection reset; during a reload the other workers already serve, so closing politely first
    /// is what makes a reload drop nothing. A second or less, and at most a quarter of graceful_timeout.
    /// </summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        tracker.Draining = true;
        var drain = TimeSpan.FromSeconds(1);
        if (prefork.GracefulTimeout is { } graceful && graceful / 4 < drain) drain = graceful / 4;
        try { await Task.Delay(drain, cancellationToken); }
        catch (OperationCanceledException) { }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Heartbeat()
    {
        do
        {
            if (!_orphaned && NativeMethods.getppid() != prefork.MasterPid)
            {
                _orphaned = true;
                log.LogWarning("The Prefork master (pid {Master}) is gone (our parent is now pid {Parent}); stopping", prefork.MasterPid, NativeMethods.getppid());
                lifetime.StopApplication();
            }
            Send(HeartbeatMessage());
        } while (!_stopped.Wait(Interval));
    }

    /// <summary>This worker's heartbeat now: see <see cref="Format"/>.</summary>
    public string HeartbeatMessage() => Format(prefork.Watchdog is not null, tracker.Served, tracker.Oldest());

    /// <summary>
    /// A heartbeat datagram: `WATCHDOG=1` (when the master watches), the requests served so far and the
    /// oldest request in flight (its age in ms, method and path; -1 and neither when idle).
    /// </summary>
    public static string Format(bool watchdog, long served, (long BusyMs, string Method, string Path) oldest)
    {
        var message = new StringBuilder();
        if (watchdog) message.Append("WATCHDOG=1\n");
        message.Append("PREFORK_REQUESTS=").Append(served).Append('\n');
        message.Append("PREFORK_BUSY_MS=").Append(oldest.BusyMs < 0 ? -1 : oldest.BusyMs);
        if (oldest.BusyMs >= 0)
        {
            message.Append("\nPREFORK_METHOD=").Append(OneLine(oldest.Method, MaxMethodLength));
            message.Append("\nPREFORK_PATH=").Append(OneLine(oldest.Path, MaxPathLength));
        }
        return message.ToString();
    }

    /// <summary>At most <paramref name="max"/> characters, none of them a control character (a decoded path may hold %0A).</summary>
    private static string OneLine(string text, int max)
    {
        if (text.Length > max) text = text[..max];
        return text.Any(char.IsControl) ? string.Concat(text.Select(c => char.IsControl(c) ? '?' : c)) : text;
    }

    private void Send(string message)
    {
        if (_notifier is null) return;
        if (_notifier.Send(message, out var error)) { _sendFailed = false; return; }
        if (!_sendFailed) log.LogWarning("Could not notify the Prefork master at {Socket}: {Error}", _notifier.Name, error);
        _sendFailed = true; // said once until it works again
    }

    public void Dispose()
    {
        _stopped.Set();
        _notifier?.Dispose();
    }
}
