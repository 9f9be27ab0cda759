using System.Text;

namespace Prefork.Gateway;

/// <summary>
/// The body an application returns: nothing, one buffer, a synchronous sequence of chunks, or an
/// asynchronous one. A single buffer is sent with a Content-Length; a sequence is streamed
/// (chunked on HTTP/1.1) unless the application set Content-Length itself.
/// </summary>
public readonly struct ResponseBody
{
    public ReadOnlyMemory<byte> Single { get; }
    public IEnumerable<ReadOnlyMemory<byte>>? Chunks { get; }
    public IAsyncEnumerable<ReadOnlyMemory<byte>>? AsyncChunks { get; }

    private ResponseBody(ReadOnlyMemory<byte> single, IEnumerable<ReadOnlyMemory<byte>>? chunks,
        IAsyncEnumerable<ReadOnlyMemory<byte>>? asyncChunks)
    {
        Single = single;
        Chunks = chunks;
        AsyncChunks = asyncChunks;
    }

    public static ResponseBody Empty => default;

    /// <summary>True when the body is at most one buffer, so its length is known up front.</summary>
    public bool IsSingle => Chunks is null && AsyncChunks is null;

    public static ResponseBody From(ReadOnlyMemory<byte> bytes) => new(bytes, null, null);
    public static ResponseBody From(string text) => new(Encoding.UTF8.GetBytes(text), null, null);
    public static ResponseBody Stream(IEnumerable<ReadOnlyMemory<byte>> chunks) => new(default, chunks, null);
    public static ResponseBody Stream(IAsyncEnumerable<ReadOnlyMemory<byte>> chunks) => new(default, null, chunks);

    public static implicit operator ResponseBody(byte[] bytes) => From(bytes);
    public static implicit operator ResponseBody(ReadOnlyMemory<byte> bytes) => From(bytes);
    public static implicit operator ResponseBody(string text) => From(text);
}
