using System.Text;
using Mono.Unix.Native;
using Serilog;

namespace Prefork.Master;

/// <summary>
/// A command worker's stdout and stderr (one pipe), into the master's error log: one log event per
/// line, prefixed with the worker, so lines of several workers never tear or interleave within a
/// line. A line longer than <see cref="MaxLine"/> is cut into pieces of that size (the log stays
/// bounded whatever a program prints); control characters show as '?'. The last few lines are
/// kept: when the program exits before it is ready, they are the reason the log gives.
/// </summary>
public sealed class WorkerOutput(string worker)
{
    public const int MaxLine = 4000, LinesKept = 5;

    private readonly StringBuilder _partial = new();
    private readonly Queue<string> _last = new();
    private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();

    /// <summary>Its last lines, oldest first, joined with " | "; null when it printed nothing.</summary>
    public string? LastLines => _last.Count == 0 ? null : string.Join(" | ", _last);

    /// <summary>Reads what waits in the pipe (non-blocking) and logs each whole line. False once the pipe is at its end.</summary>
    public unsafe bool Read(int fd)
    {
        byte* buffer = stackalloc byte[4096];
        char* chars = stackalloc char[4200]; // 4096 bytes and a sequence left from the last read
        long n;
        while ((n = Syscall.read(fd, buffer, 4096)) > 0)
        {
            int count = _utf8.GetChars(buffer, (int)n, chars, 4200, flush: false);
            Take(new ReadOnlySpan<char>(chars, count));
        }
        return n != 0;
    }

    /// <summary>Logs what is left of an unfinished last line (the worker has exited).</summary>
    public void Flush()
    {
        if (_partial.Length > 0) Emit();
    }

    /// <summary>Adds text; each complete line is logged.</summary>
    public void Take(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (c == '\n') { Emit(); continue; }
            if (c == '\r') continue;
            _partial.Append(char.IsControl(c) && c != '\t' ? '?' : c);
            if (_partial.Length >= MaxLine) Emit();
        }
    }

    private void Emit()
    {
        var line = _partial.ToString();
        _partial.Clear();
        Log.Information("{Worker}: {Line}", worker, line);
        _last.Enqueue(line.Length > 300 ? line[..300] + "…" : line);
        while (_last.Count > LinesKept) _last.Dequeue();
    }
}
