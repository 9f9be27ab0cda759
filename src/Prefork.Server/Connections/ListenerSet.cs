using System.Net.Sockets;
using Prefork.Interop;

namespace Prefork.Connections;

/// <summary>
/// The listening sockets of a threads or epoll worker, registered with its epoll set so that a new
/// connection wakes one worker, not all of them, and wakes the workers in turn.
/// </summary>
/// <remarks>
/// EPOLLEXCLUSIVE alone avoids the thundering herd but hands every wake-up to the first worker in
/// the listener's wait queue that is waiting, so an idle server puts all connections on one worker
/// (measured: 50 connections arriving 2 ms apart, 2 workers: 50/0 in 6 rounds out of 6). A worker
/// that accepted therefore registers again (EPOLL_CTL_ADD appends at the tail of the queue): the next
/// connection wakes the next worker (measured: 25/25 in 6 rounds out of 6). Sockets per worker with
/// SO_REUSEPORT would need the master to hold one socket per worker slot; this needs nothing from it.
/// </remarks>
internal sealed class ListenerSet
{
    private readonly Epoll _epoll;
    private readonly ulong _firstToken;
    private long _resumeAt;

    public ListenerSet(IReadOnlyList<Socket> sockets, Epoll epoll, ulong firstToken)
    {
        Sockets = sockets.Select(s => new ListenSocket(s)).ToArray();
        _epoll = epoll;
        _firstToken = firstToken;
    }

    public ListenSocket[] Sockets { get; }
    public bool Accepting { get; private set; }

    /// <summary>The listener an epoll token names, or null when the token is not a listener's.</summary>
    public ListenSocket? Find(ulong token) =>
        token >= _firstToken && token < _firstToken + (ulong)Sockets.Length ? Sockets[token - _firstToken] : null;

    public void Start()
    {
        if (Accepting) return;
        for (int i = 0; i < Sockets.Length; i++) Register(i);
        Accepting = true;
    }

    /// <summary>Stops accepting (at worker_connections, on errors, when stopping); see <see cref="MayResume"/>.</summary>
    public void Pause(int resumeAfterMs = 0)
    {
        if (!Accepting) return;
        foreach (var socket in Sockets) _epoll.Remove(socket.Fd);
        Accepting = false;
        _resumeAt = Environment.TickCount64 + resumeAfterMs;
    }

    public bool MayResume(long now) => !Accepting && now >= _resumeAt;

    /// <summary>After accepting: go to the back of the listener's wake-up queue.</summary>
    public void Rotate(ListenSocket socket)
    {
        if (!Accepting) return;
        int i = Array.IndexOf(Sockets, socket);
        _epoll.Remove(socket.Fd);
        Register(i);
    }

    private void Register(int i)
    {
        try { _epoll.Add(Sockets[i].Fd, Native.EPOLLIN | Native.EPOLLEXCLUSIVE, _firstToken + (ulong)i); }
        catch (IOException) { _epoll.Add(Sockets[i].Fd, Native.EPOLLIN, _firstToken + (ulong)i); } // kernels before 4.5
    }

    /// <summary>
    /// Accepts one waiting connection into a free slot of <paramref name="table"/>. Null when none
    /// waits, or when there is no room (worker_connections reached: accepting pauses until one
    /// closes) or accept failed (out of descriptors: accepting pauses a second).
    /// </summary>
    public Connection? Accept(ListenSocket listener, ConnectionTable table)
    {
        var c = table.Rent();
        if (c is null)
        {
            Pause(); // worker_connections reached; resumes when one closes
            return null;
        }
        var result = listener.TryAccept(out int fd, c.Info);
        if (result != ListenSocket.Result.Accepted)
        {
            table.Return(c);
            if (result == ListenSocket.Result.Failed) Pause(resumeAfterMs: 1000);
            return null;
        }
        c.Open(fd);
        return c;
    }
}
