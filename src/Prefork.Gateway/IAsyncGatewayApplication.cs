namespace Prefork.Gateway;

/// <summary>
/// A web application whose response may depend on something it must await first (a database
/// query, an HTTP call): the asynchronous form of <see cref="IGatewayApplication"/>, as ASGI is
/// to WSGI. The server calls <see cref="InvokeAsync"/> once per request; the application may await
/// before it calls <c>startResponse</c>, so the status can depend on what it awaited.
/// </summary>
/// <remarks>
/// <para>
/// Implement this instead of <see cref="IGatewayApplication"/> (a class that implements both is
/// called through <see cref="InvokeAsync"/>). Everything else is the same: the environment, the
/// <see cref="StartResponse"/> rules, the <see cref="ResponseBody"/> forms, <see cref="IWorkerLifecycle"/>.
/// </para>
/// <para>
/// With the <c>epoll</c> worker class the awaits run on the worker's event loop: no thread waits,
/// and one worker has many such requests in flight at once. With <c>sync</c> and <c>threads</c> the
/// serving thread waits for the returned task (the continuations run on the thread pool), so the
/// request costs a thread for its whole length, as a synchronous one does.
/// </para>
/// <para>
/// A <see cref="ValueTask{TResult}"/> that completes without awaiting (an <c>async</c> method that
/// took no await, or <c>ValueTask.FromResult</c>) costs nothing over <see cref="IGatewayApplication.Invoke"/>.
/// </para>
/// </remarks>
public interface IAsyncGatewayApplication
{
    ValueTask<ResponseBody> InvokeAsync(RequestEnvironment environ, StartResponse startResponse);
}
