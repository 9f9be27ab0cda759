using System.Buffers;

namespace Prefork.Http;

/// <summary>
/// gateway.input: a read-only, seekable stream over a request body already received, in memory or
/// in its temp file (<see cref="BodyBuffer"/>). One instance per connection is pointed at each
/// request's body in turn, so reading a body allocates nothing.
/// </summary>
public sealed class BodyStream : Stream
{
    private BodyBuffer? _body;
    private long _position;

    public void Reset(BodyBuffer body)
    {
        _body = body;
        _position = 0;
    }

    private long DataLength => _body?.Length ?? 0;

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => DataLength;

    public override long Position
    {
        get => _position;
        set => _position = Math.Clamp(value, 0, DataLength);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        if (_body is null) return 0;
        int n = _body.Read(_position, destination);
        _position += n;
        return n;
    }

    public override int ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        return Read(one) == 1 ? one[0] : -1;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Read(destination.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult(Read(buffer.AsSpan(offset, count)));

    public override void CopyTo(Stream destination, int bufferSize)
    {
        if (_body is null) return;
        if (!_body.InFile)
        {
            destination.Write(_body.InMemory[(int)_position..]);
            _position = DataLength;
            return;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(bufferSize);
        try
        {
            int n;
            while ((n = Read(buffer)) > 0) destination.Write(buffer, 0, n);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => DataLength + offset,
        };
        return _position;
    }

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
