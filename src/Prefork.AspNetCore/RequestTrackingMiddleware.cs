using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Prefork.AspNetCore;

/// <summary>
/// Counts every request and keeps the ones in flight in the <see cref="RequestTracker"/>. Added by
/// <see cref="RequestTrackingStartupFilter"/>, so it is the first middleware and times the whole pipeline.
/// </summary>
internal sealed class RequestTrackingMiddleware(RequestDelegate next, RequestTracker tracker)
{
    public Task InvokeAsync(HttpContext context)
    {
        // An upgrade (a WebSocket, HTTP/1.1 or HTTP/2) lives as long as the client wants: counted, but
        // never timed, or the master would kill a worker for an open chat window.
        if (IsUpgrade(context)) return Counted(next(context));

        // Draining before a stop: each keep-alive connection is closed by its next answer, with
        // Connection: close, so the client knows; none is left idle for Kestrel to close under a
        // request the client is sending at that moment.
        if (tracker.Draining && !context.Response.HasStarted && context.Request.Protocol is "HTTP/1.1" or "HTTP/1.0")
            context.Response.Headers.Connection = "close";
        var slot = tracker.Begin(context.Request.Method, context.Request.Path.Value ?? "");
        Task pipeline;
        try { pipeline = next(context); }
        catch
        {
            tracker.End(slot);
            throw;
        }
        if (pipeline.IsCompleted)
        {
            tracker.End(slot);
            return pipeline;
        }
        return Awaited(pipeline, slot); // the one allocation: the state machine of a request that really waits
    }

    private async Task Awaited(Task pipeline, RequestTracker.Slot slot)
    {
        try { await pipeline; }
        finally { tracker.End(slot); }
    }

    private async Task Counted(Task pipeline)
    {
        try { await pipeline; }
        finally { tracker.Count(); }
    }

    private static bool IsUpgrade(HttpContext context) =>
        context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true ||
        context.Features.Get<IHttpExtendedConnectFeature>()?.IsExtendedConnect == true;
}

/// <summary>Puts <see cref="RequestTrackingMiddleware"/> before everything the app adds.</summary>
internal sealed class RequestTrackingStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.UseMiddleware<RequestTrackingMiddleware>();
        next(app);
    };
}
