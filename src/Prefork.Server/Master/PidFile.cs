using Mono.Unix.Native;

namespace Prefork.Master;

/// <summary>The master's pid file: written atomically (temp file + rename), refused over a live pid, removed only if still ours.</summary>
public sealed class PidFile(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);

    public void Create()
    {
        if (File.Exists(Path) && int.TryParse(File.ReadAllText(Path).Trim(), out var other) && other != Environment.ProcessId
            && Syscall.kill(other, 0) == 0)
            throw new IOException($"pidfile {Path} names pid {other}, which is running: is another prefork master using it?");
        var temp = Path + ".tmp." + Environment.ProcessId;
        File.WriteAllText(temp, Environment.ProcessId + "\n");
        File.Move(temp, Path, overwrite: true);
    }

    public void Remove()
    {
        try
        {
            if (File.Exists(Path) && File.ReadAllText(Path).Trim() == Environment.ProcessId.ToString()) File.Delete(Path);
        }
        catch (IOException) { }
    }
}
