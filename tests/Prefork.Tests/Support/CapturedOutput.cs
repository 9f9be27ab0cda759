using System.Diagnostics;
using System.Text;

namespace Prefork.Tests.Support;

/// <summary>Everything a started process writes to stdout and stderr, line by line, and bounded waits for a line.</summary>
public sealed class CapturedOutput
{
    private readonly Process _process;
    private readonly StringBuilder _text = new();

    public CapturedOutput(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_text) _text.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_text) _text.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Text { get { lock (_text) return _text.ToString(); } }

    public void WaitFor(string text, TimeSpan timeout, int occurrences = 1)
    {
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            if (Count(text) >= occurrences) return;
            if (_process.HasExited)
            {
                _process.WaitForExit(); // the untimed wait also reads the output's last lines
                if (Count(text) >= occurrences) return;
                throw new InvalidOperationException($"the process exited ({_process.ExitCode}) before logging '{text}'. Log:\n{Text}");
            }
            Thread.Sleep(50);
        }
        throw new TimeoutException($"'{text}' (x{occurrences}) not logged within {timeout}. Log:\n{Text}");
    }

    public int Count(string text)
    {
        var log = Text;
        int count = 0;
        for (int i = log.IndexOf(text, StringComparison.Ordinal); i >= 0; i = log.IndexOf(text, i + 1, StringComparison.Ordinal)) count++;
        return count;
    }
}
