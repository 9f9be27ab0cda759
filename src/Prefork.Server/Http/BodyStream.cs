namespace Prefork.Http;

/// <summary>
/// gateway.input: a read-only, seekable stream over a request body already received. One instance
/// per connection is pointed at each request's body in turn, so reading a body allocates nothing.
/// </summary>
public sealed class BodyStream : Stream
{
    private ReadOnlyMemory<byte> _data;
    private int _position;

    public void Reset(ReadOnlyMemory<byte> data)
    {
        _data = data;
        _position = 0;
    }

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => _data.Length;

    public override long Position
    {
        get => _position;
        set => _position = (int)Math.Clamp(value, 0, _data.Length);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        int n = Math.Min(destination.Length, _data.Length - _position);
        _data.Span.Slice(_position, n).CopyTo(destination);
        _position += n;
        return n;
    }

    public override int ReadByte() => _position < _data.Length ? _data.Span[_position++] : -1;

    public override ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Read(destination.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult(Read(buffer.AsSpan(offset, count)));

    public override void CopyTo(Stream destination, int bufferSize)
    {
        destination.Write(_data.Span[_position..]);
        _position = _data.Length;
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => _data.Length + offset,
        };
        return _position;
    }

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
