namespace Prefork.Http;

/// <summary>
/// The client is gone (reset, broken pipe, or too slow to read its response): the response in
/// progress is abandoned and the connection closed. Thrown by the connection's transport; it stops
/// an application's streamed body early instead of producing bytes nobody reads.
/// </summary>
public sealed class ConnectionLostException(string message) : IOException(message);
