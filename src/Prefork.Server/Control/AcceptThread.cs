using System.Net.Sockets;
using Mono.Unix.Native;
using Prefork.Interop;

namespace Prefork.Control;

/// <summary>
/// The accept thread of a listener of the master's own (control socket, metrics). It sleeps in poll()
/// on the listener and a self-pipe (no timeout, so an idle master does not wake for it), so that an
/// in-place upgrade can stop it before the exec: a client it has accepted would be cut off by the
/// exec, one it has not waits in the kernel's queue for the new image (<see cref="HandOver"/>).
/// </summary>
public sealed class AcceptThread : IDisposable
{
    private readonly Socket _listener;
    private readonly string _name;
    private readonly Action<Socket> _accepted;
    private readonly Func<int> _busy;
    private readonly WakeUp _wake = new();
    private volatile bool _stop;
    private Thread _thread = null!;

    /// <param name="accepted">Takes each client (and serves it on a thread of its own).</param>
    /// <param name="busy">How many accepted clients are still being served.</param>
    public AcceptThread(Socket listener, string name, Action<Socket> accepted, Func<int> busy)
    {
        (_listener, _name, _accepted, _busy) = (listener, name, accepted, busy);
        Start();
    }

    /// <summary>The listener's fd, to keep across an in-place upgrade's exec.</summary>
    public int ListenerFd => (int)_listener.Handle;

    private void Start()
    {
        _stop = false;
        _thread = new Thread(Loop) { IsBackground = true, Name = _name };
        _thread.Start();
    }

    private void Loop()
    {
        var fds = new[]
        {
            new Pollfd { fd = ListenerFd, events = PollEvents.POLLIN },
            new Pollfd { fd = _wake.ReadFd, events = PollEvents.POLLIN },
        };
        while (true)
        {
            fds[0].revents = fds[1].revents = 0;
            if (Syscall.poll(fds, -1) < 0 && Stdlib.GetLastError() != Errno.EINTR) return;
            if (_stop) return;
            if ((fds[0].revents & PollEvents.POLLIN) == 0) continue;
            Socket client;
            try { client = _listener.Accept(); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; } // closed: the master stops
            _accepted(client);
        }
    }

    /// <summary>Before an in-place upgrade's exec: no new client; those taken are answered first (2 s at most in all).</summary>
    public void PauseForExec()
    {
        long until = Environment.TickCount64 + 2000;
        _stop = true;
        _wake.Signal();
        _thread.Join(2000);
        while (_busy() > 0 && Environment.TickCount64 < until) Thread.Sleep(5);
    }

    /// <summary>The exec failed: accept again.</summary>
    public void Resume()
    {
        _wake.Drain();
        Start();
    }

    /// <summary>Ends the thread (before its listener is closed: poll() does not wake for a close).</summary>
    public void Dispose()
    {
        _stop = true;
        _wake.Signal();
        _thread.Join(1000);
        _wake.Dispose();
    }
}
