using System.Buffers;
using System.Threading.Tasks.Sources;
using Prefork.Http;

namespace Prefork.Connections;

/// <summary>
/// epoll: what the kernel does not take at once is queued, and sent by the loop when the socket
/// is writable again (<see cref="SendQueued"/>). A streamed body waits (<see cref="DrainAsync"/>)
/// while much is queued, so a slow reader is not outrun.
/// </summary>
public sealed class QueuedTransport : Transport, IValueTaskSource
{
    /// <summary>Queued output above which a streamed body waits, and below which it resumes.</summary>
    private const int HighWater = 256 * 1024, LowWater = 64 * 1024;
    /// <summary>Queued output above which the loop stops reading more requests from the client.</summary>
    public const int ReadPauseBytes = HighWater;

    // _out[_outStart.._outEnd]
    private byte[]? _out;
    private int _outStart, _outEnd;
    private ManualResetValueTaskSourceCore<bool> _drain = new() { RunContinuationsAsynchronously = true };
    private bool _drainWaiting;

    public QueuedTransport() => _drain.SetResult(true); // so the first Reset starts from a completed state

    public override int QueuedBytes => _outEnd - _outStart;
    public override bool NeedsDrain => QueuedBytes > HighWater;

    public override void Send(ReadOnlySpan<byte> bytes)
    {
        ThrowIfBroken();
        if (QueuedBytes == 0)
        {
            int sent = TrySend(bytes);
            if (sent < 0) throw Lost();
            bytes = bytes[sent..];
            if (bytes.IsEmpty) return;
        }
        Enqueue(bytes);
    }

    public override ValueTask DrainAsync()
    {
        if (!NeedsDrain) return ValueTask.CompletedTask;
        ThrowIfBroken();
        _drain.Reset();
        _drainWaiting = true;
        return new ValueTask(this, _drain.Version);
    }

    public override bool SendQueued()
    {
        if (QueuedBytes > 0)
        {
            int sent = TrySend(_out.AsSpan(_outStart, QueuedBytes));
            if (sent < 0)
            {
                FailDrainWaiter();
                return false;
            }
            _outStart += sent;
        }
        if (QueuedBytes == 0) ReleaseOutput();
        if (_drainWaiting && QueuedBytes <= LowWater)
        {
            _drainWaiting = false;
            _drain.SetResult(true);
        }
        return true;
    }

    public override void Abort()
    {
        base.Abort();
        FailDrainWaiter();
    }

    public override void Close()
    {
        FailDrainWaiter();
        base.Close();
        ReleaseOutput();
    }

    private void Enqueue(ReadOnlySpan<byte> bytes)
    {
        if (_out is null) _out = ArrayPool<byte>.Shared.Rent(Math.Max(16 * 1024, bytes.Length));
        else if (_out.Length - _outEnd < bytes.Length)
        {
            int queued = QueuedBytes;
            var target = queued + bytes.Length <= _out.Length ? _out : ArrayPool<byte>.Shared.Rent(Math.Max(_out.Length * 2, queued + bytes.Length));
            Buffer.BlockCopy(_out, _outStart, target, 0, queued);
            if (!ReferenceEquals(target, _out)) ArrayPool<byte>.Shared.Return(_out);
            _out = target;
            _outStart = 0;
            _outEnd = queued;
        }
        bytes.CopyTo(_out.AsSpan(_outEnd));
        _outEnd += bytes.Length;
    }

    private void ReleaseOutput()
    {
        if (_out is not null) ArrayPool<byte>.Shared.Return(_out);
        _out = null;
        _outStart = _outEnd = 0;
    }

    private void FailDrainWaiter()
    {
        if (!_drainWaiting) return;
        _drainWaiting = false;
        _drain.SetException(new ConnectionLostException("the connection closed while the response was streaming"));
    }

    // ---- IValueTaskSource: DrainAsync's completion, reused for every wait ---------------------------

    void IValueTaskSource.GetResult(short token) => _drain.GetResult(token);
    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _drain.GetStatus(token);
    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _drain.OnCompleted(continuation, state, token, flags);
}
