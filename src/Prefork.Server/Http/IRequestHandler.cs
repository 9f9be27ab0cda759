using Prefork.Gateway;

namespace Prefork.Http;

/// <summary>
/// What a connection hands each complete request to: the one place HTTP meets the application.
/// The gateway interface is one implementation.
/// </summary>
public interface IRequestHandler
{
    /// <summary>
    /// Serves one complete request, writing the response through <paramref name="writer"/>; a
    /// failure of the application becomes a 500 (or a dropped connection if bytes had left), never
    /// an exception. True when the connection may carry another request (<paramref name="keepAlive"/>
    /// says whether the server allows it). <paramref name="trailers"/> are a chunked body's trailer fields.
    /// </summary>
    ValueTask<bool> ProcessAsync(RequestHead head, Stream body, long bodyLength, ConnectionInfo connection,
        ResponseWriter writer, bool keepAlive, RequestHeaders? trailers);
}
