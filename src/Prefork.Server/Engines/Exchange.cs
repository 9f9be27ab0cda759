using Prefork.Http;

namespace Prefork.Engines;

/// <summary>
/// What one request in progress needs besides its connection: the request handler (with the
/// reused request environment), the response writer and its buffer, and the heartbeat slot that says
/// what is running. The sync worker and each pool thread own one; the epoll loop keeps one for
/// requests that complete at once and lends others to connections whose request awaits.
/// </summary>
public sealed class Exchange
{
    public Exchange(EngineContext context)
    {
        Slot = context.NewSlot();
        Handler = context.NewHandler(Slot);
    }

    public RequestSlot Slot { get; }
    public IRequestHandler Handler { get; }
    public ResponseWriter Writer { get; } = new(NoTransport.Instance);

    private sealed class NoTransport : IResponseTransport
    {
        public static readonly NoTransport Instance = new();
        public void Send(ReadOnlySpan<byte> bytes) => throw new InvalidOperationException("response writer used before a connection was attached");
    }
}
