using System.Runtime.CompilerServices;
using Prefork.Engines;
using Prefork.Gateway;
using Prefork.Http;
using Prefork.Logging;
using Serilog;

namespace Prefork.Worker;

/// <summary>
/// The request handler that serves through the gateway interface, for every worker class: compose
/// the environment, call the application, stream its body through the <see cref="ResponseWriter"/>, and turn any failure of
/// the application into a 500 (or a dropped connection if bytes had already left) — never into a
/// dead worker.
/// </summary>
public sealed class GatewayRequestHandler : IRequestHandler
{
    private readonly WorkerContext _worker;
    private readonly IGatewayApplication? _app;
    private readonly IAsyncGatewayApplication? _asyncApp; // when set, called instead of _app
    private readonly RequestSlot _slot;
    private readonly RequestEnvironment _env = new();
    private readonly ForwardedHeaders _forwarded;
    private readonly StartResponse _startResponse;
    private string? _status;
    private IReadOnlyList<KeyValuePair<string, string>>? _headers;
    private (string Value, string Name, string? Port) _host = ("", "", null); // the last Host, split

    /// <param name="slot">Says which request runs, for the heartbeat.</param>
    public GatewayRequestHandler(WorkerContext worker, RequestSlot slot)
    {
        _worker = worker;
        _asyncApp = worker.App as IAsyncGatewayApplication;
        _app = _asyncApp is null ? (IGatewayApplication)worker.App : null;
        _slot = slot;
        _forwarded = ForwardedHeaders.From(worker.Config);
        _startResponse = (status, headers) =>
        {
            _status = status;
            _headers = headers;
        };
        _env.Errors = worker.ErrorWriter;
        _env.Multithread = worker.Multithread;
        _env.Worker = worker.Info;
    }

    /// <summary>
    /// Completes synchronously (allocating nothing) unless the application awaits (an
    /// <see cref="IAsyncGatewayApplication"/> whose task is not complete, or an asynchronous body)
    /// or the transport asks a streamed body to wait; then the continuations run on the caller's
    /// SynchronizationContext (the epoll worker's loop). A chunked body's trailers are shown to the
    /// app as <c>env.Items["gateway.trailers"]</c>.
    /// </summary>
    // Pooled: a request that awaits (an asynchronous app or body) reuses this method's state
    // machine box rather than allocating one (its ValueTask is awaited exactly once, by the connection).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> ProcessAsync(RequestHead head, Stream body, long bodyLength, ConnectionInfo connection,
        ResponseWriter writer, bool keepAlive, RequestHeaders? trailers)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            FillEnvironment(head, body, bodyLength, connection, trailers);
        }
        catch (HttpError e)
        {
            // A trusted proxy contradicting itself: refused like a malformed request, never shown to the app.
            Log.Debug("Bad request from {Remote}: {Error}", connection.RemoteAddr, e.Message);
            writer.WriteError(e.Status, head.Method == "HEAD");
            _worker.AccessLog?.Write(_env, head, writer.Status, writer.BodyBytes, started);
            return false;
        }
        _slot.Begin(head.Method, _env.PathInfo);
        _status = null;
        _headers = null;
        keepAlive &= head.KeepAlive;
        try
        {
            var result = _asyncApp is null ? _app!.Invoke(_env, _startResponse) : await InvokeAsync(writer);
            // Decided when the head is written: a request in flight when the worker is told to stop
            // tells its client (Connection: close) not to send another on this connection.
            if (_worker.IsStopping) keepAlive = false;
            if (result.IsSingle) WriteSingle(result.Single.Span, head, writer, keepAlive);
            else if (result.Chunks is { } chunks) await WriteChunks(chunks, head, writer, keepAlive);
            else await WriteAsyncChunks(result.AsyncChunks!, head, writer, keepAlive);
        }
        catch (ConnectionLostException)
        {
            writer.Discard(); // the client is gone: nobody to answer
            return false;
        }
        catch (Exception e)
        {
            Log.Error(e, "Error handling request {Method} {Target}", head.Method, head.Target);
            // Bytes of the response have left: close the connection without ending the body (no last
            // chunk), so the client sees a truncated response, not a complete one (RFC 9112 §7.1).
            if (!writer.TryDiscardResponse()) { writer.Discard(); return false; }
            writer.WriteError(500, head.Method == "HEAD");
        }
        finally
        {
            _slot.End();
        }
        _worker.AccessLog?.Write(_env, head, writer.Status, writer.BodyBytes, started);
        _worker.CountRequest();
        Protocol.RequestCounters.Completed(head.Method, writer.Status, writer.BodyBytes, started);
        return writer.KeepAlive;
    }

    /// <summary>The asynchronous application: what it awaited decides the status, so nothing is written until it returns.</summary>
    private ValueTask<ResponseBody> InvokeAsync(ResponseWriter writer)
    {
        var invoked = _asyncApp!.InvokeAsync(_env, _startResponse);
        if (!invoked.IsCompleted) writer.Flush(); // earlier pipelined responses leave now, not after the wait
        return invoked;
    }

    private void WriteSingle(ReadOnlySpan<byte> body, RequestHead head, ResponseWriter writer, bool keepAlive)
    {
        writer.WriteHead(RequireStatus(), _headers!, head, keepAlive, body.Length);
        writer.WriteBody(body);
        writer.EndBody();
    }

    private async ValueTask WriteChunks(IEnumerable<ReadOnlyMemory<byte>> chunks, RequestHead head, ResponseWriter writer, bool keepAlive)
    {
        using var e = chunks.GetEnumerator();
        bool more = e.MoveNext(); // PEP 3333: start_response may be called during the first iteration
        writer.WriteHead(RequireStatus(), _headers!, head, keepAlive && !_worker.IsStopping, -1);
        if (head.Method != "HEAD")
            for (; more; more = e.MoveNext())
            {
                writer.WriteBody(e.Current.Span);
                if (writer.NeedsDrain) await writer.DrainAsync(); // a slow reader: produce no faster than it reads
            }
        writer.EndBody();
    }

    private async ValueTask WriteAsyncChunks(IAsyncEnumerable<ReadOnlyMemory<byte>> chunks, RequestHead head, ResponseWriter writer, bool keepAlive)
    {
        var e = chunks.GetAsyncEnumerator();
        try
        {
            var next = e.MoveNextAsync();
            if (!next.IsCompleted) writer.Flush(); // earlier pipelined responses leave now, not after the wait
            bool more = await next;
            writer.WriteHead(RequireStatus(), _headers!, head, keepAlive && !_worker.IsStopping, -1);
            if (head.Method != "HEAD")
                while (more)
                {
                    writer.WriteBody(e.Current.Span);
                    if (writer.NeedsDrain) await writer.DrainAsync();
                    next = e.MoveNextAsync();
                    // A streamed body is streamed: what is ready leaves before waiting for the next piece.
                    if (!next.IsCompleted) writer.Flush();
                    more = await next;
                }
            writer.EndBody();
        }
        finally
        {
            await e.DisposeAsync();
        }
    }

    private string RequireStatus() =>
        _status ?? throw new InvalidOperationException("the application returned without calling start_response");

    private void FillEnvironment(RequestHead head, Stream body, long bodyLength, ConnectionInfo connection, RequestHeaders? trailers)
    {
        var env = _env;
        env.Method = head.Method;
        env.RawTarget = head.Target;
        env.Protocol = head.Protocol;
        env.Headers.Clear();
        foreach (var field in head.Headers) env.Headers.Add(field.Key, field.Value);
        env.Input = body;
        env.ContentLength = head.HasBody || head.ContentLength is not null ? bodyLength : null;
        // The environment is reused for the next request: nothing an app or the last request put in Items may leak.
        if (env.Items.Count > 0) env.Items.Clear();
        if (trailers is { Count: > 0 }) env.Items["gateway.trailers"] = trailers;
        if (connection.Secure)
        {
            // As mod_ssl names them (and Gunicorn's peercert): the client certificate, when there is one.
            env.Items["SSL_CLIENT_VERIFY"] = connection.ClientVerify;
            if (connection.ClientCertificatePem is { } pem)
            {
                env.Items["SSL_CLIENT_S_DN"] = connection.ClientSubjectDn;
                env.Items["SSL_CLIENT_CERT"] = pem;
            }
        }
        RequestTarget.Split(head.Target, out var authority, out var path, out var query);
        env.PathInfo = path;
        env.QueryString = query;
        env.ScriptName = "";
        // RFC 9112 §3.2.2: with an absolute-form target its authority, not Host, names the server.
        var host = authority ?? head.Host;
        if (!string.IsNullOrEmpty(host))
        {
            // Clients send the same Host request after request: split it once, not per request.
            if (host != _host.Value)
            {
                int colon = host.LastIndexOf(':');
                bool hasPort = colon > 0 && host.IndexOf(']', colon) < 0;
                _host = (host, hasPort ? host[..colon] : host, hasPort ? host[(colon + 1)..] : null);
            }
            env.ServerName = _host.Name;
            env.ServerPort = _host.Port ?? connection.LocalPort;
        }
        else
        {
            env.ServerName = connection.LocalAddr;
            env.ServerPort = connection.LocalPort;
        }
        _forwarded.Apply(head.Headers, connection, env);
    }
}
