using Prefork.Engines;
using Prefork.Gateway;
using Prefork.Http;

namespace Prefork.Worker;

/// <summary>
/// What every part of one worker process shares: what its engine needs (<see cref="EngineContext"/>),
/// and its app, identity, logs and request count.
/// </summary>
public sealed class WorkerContext : EngineContext
{
    private long _requests;

    /// <summary>What <see cref="AppLoader"/> loaded: an <see cref="IGatewayApplication"/>, an <see cref="IAsyncGatewayApplication"/>, or both.</summary>
    public required object App { get; init; }
    public required WorkerInfo Info { get; init; }
    public required TextWriter ErrorWriter { get; init; }
    public AccessLog? AccessLog { get; init; }
    public bool Multithread { get; init; }

    public long Requests => Interlocked.Read(ref _requests);
    public void CountRequest() => Interlocked.Increment(ref _requests);

    /// <summary>The engines serve every request through the gateway interface.</summary>
    public override IRequestHandler NewHandler(RequestSlot slot) => new GatewayRequestHandler(this, slot);
}
