using System.Net.Sockets;
using Mono.Unix.Native;

namespace Prefork.Worker;

/// <summary>
/// worker_class = "sync": Gunicorn's sync worker. One connection at a time, blocking I/O. Keeps a
/// connection alive only while nobody else is waiting in the accept queue, so keep-alive clients
/// cannot starve the others.
/// </summary>
public sealed class SyncWorker : IWorkerEngine
{
    public void Run(WorkerContext context, IReadOnlyList<Socket> listeners, WakeUp wake)
    {
        var connection = new Http.BlockingConnection(context);
        var fds = listeners.Select(l => new Pollfd { fd = (int)l.Handle, events = PollEvents.POLLIN })
            .Append(new Pollfd { fd = wake.ReadFd, events = PollEvents.POLLIN }).ToArray();
        bool NobodyWaiting() => !listeners.Any(l => l.Poll(0, SelectMode.SelectRead));

        while (!context.IsStopping)
        {
            if (Syscall.poll(fds, 1000) <= 0) continue;
            for (int i = 0; i < listeners.Count && !context.IsStopping; i++)
                if ((fds[i].revents & PollEvents.POLLIN) != 0 && TryAccept(listeners[i]) is { } client)
                    connection.Serve(client, NobodyWaiting);
            if ((fds[^1].revents & PollEvents.POLLIN) != 0) wake.Drain();
        }

        // Graceful stop: serve what already waits in the accept queue, then leave.
        foreach (var listener in listeners)
            while (TryAccept(listener) is { } client) connection.Serve(client, () => false);
    }

    /// <summary>Accepts if a connection is still there (other workers race for it: thundering herd).</summary>
    internal static Socket? TryAccept(Socket listener)
    {
        try
        {
            var client = listener.Accept();
            client.Blocking = true;
            if (client.AddressFamily != AddressFamily.Unix) client.NoDelay = true;
            return client;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.TryAgain or SocketError.ConnectionAborted)
        {
            return null;
        }
    }
}
