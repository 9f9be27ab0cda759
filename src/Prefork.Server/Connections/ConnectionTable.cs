namespace Prefork.Connections;

/// <summary>
/// The open connections of one worker, at most `worker_connections`, in reusable slots. A slot's
/// token (slot number and a generation that changes at each reuse) is what epoll hands back, so an
/// event that arrives after its connection closed finds no connection instead of a stranger.
/// Tokens with generation 0 are left for the caller's own fds (listeners, wake-ups).
/// </summary>
internal sealed class ConnectionTable
{
    private readonly Connection?[] _slots;
    private readonly uint[] _generations;
    private readonly Stack<int> _free = new();
    private readonly Func<Connection> _create;
    private readonly Lock _lock = new();
    private int _used; // slots ever handed out: _slots[0.._used]
    private int _open;

    public ConnectionTable(int capacity, Func<Connection> create)
    {
        _slots = new Connection?[capacity];
        _generations = new uint[capacity];
        _create = create;
    }

    public int Capacity => _slots.Length;
    public int Open => Volatile.Read(ref _open);
    /// <summary>Slots that may hold a connection, for scans: check each one's state.</summary>
    public int Used => Volatile.Read(ref _used);
    public Connection? this[int slot] => _slots[slot];

    /// <summary>A free connection object with a fresh token, or null when `worker_connections` are open.</summary>
    public Connection? Rent()
    {
        lock (_lock)
        {
            int slot;
            if (_free.Count > 0) slot = _free.Pop();
            else if (_used < _slots.Length) slot = _used++;
            else return null;
            var c = _slots[slot] ??= _create();
            uint generation = ++_generations[slot];
            if (generation == 0) generation = _generations[slot] = 1;
            c.Token = ((ulong)generation << 32) | (uint)slot;
            _open++;
            return c;
        }
    }

    /// <summary>Gives a closed connection's slot back.</summary>
    public void Return(Connection c)
    {
        lock (_lock)
        {
            _free.Push(SlotOf(c.Token));
            c.Token = 0;
            _open--;
        }
    }

    /// <summary>The connection a token names, or null when it closed since (or the token is not a connection's).</summary>
    public Connection? Find(ulong token)
    {
        if (token >> 32 == 0) return null;
        int slot = SlotOf(token);
        var c = slot < _slots.Length ? _slots[slot] : null;
        return c is not null && c.Token == token ? c : null;
    }

    public static bool IsConnection(ulong token) => token >> 32 != 0;

    /// <summary>The slot a connection's token names, for state the engine keeps by slot.</summary>
    public static int SlotOf(ulong token) => (int)(uint)token;
}
