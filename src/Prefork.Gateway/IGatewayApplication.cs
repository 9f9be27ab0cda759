namespace Prefork.Gateway;

/// <summary>
/// A web application served by Prefork: the .NET counterpart of a PEP 3333 (WSGI) callable.
/// The server calls <see cref="Invoke"/> once per request with the request environment and a
/// <see cref="StartResponse"/> callable; the application calls <c>startResponse</c> once with
/// the status and headers, and returns the body as a sequence of byte chunks. An application that
/// must await something before it knows its status implements <see cref="IAsyncGatewayApplication"/>.
/// </summary>
/// <remarks>
/// One instance serves every request of a worker process. With the <c>threads</c> worker class
/// <see cref="Invoke"/> runs on several threads at once (<see cref="RequestEnvironment.Multithread"/>).
/// </remarks>
public interface IGatewayApplication
{
    ResponseBody Invoke(RequestEnvironment environ, StartResponse startResponse);
}

/// <summary>
/// Sets the response status (e.g. <c>"200 OK"</c>) and headers. Call it once per request, before
/// the body's first chunk is produced; calling it again before any body byte was sent replaces
/// the first call (as PEP 3333 allows with exc_info).
/// </summary>
public delegate void StartResponse(string status, IReadOnlyList<KeyValuePair<string, string>> headers);

/// <summary>
/// Optional: an application that also implements this hears when its worker process starts and
/// stops (after the app is loaded, before the first request; after the last request).
/// </summary>
public interface IWorkerLifecycle
{
    void OnWorkerStart(WorkerInfo worker);
    void OnWorkerStop(WorkerInfo worker);
}

/// <summary>What a worker process knows about itself, as given by its master.</summary>
public sealed record WorkerInfo(int Index, int Pid, int MasterPid, int Generation);
