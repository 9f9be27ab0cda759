using System.Diagnostics;
using Mono.Unix.Native;

namespace Prefork.Tests.Support;

/// <summary>Processes as /proc and kill(2) see them: children by pid, liveness, and stopping a parent and its children.</summary>
public static class Processes
{
    /// <summary>The live (not zombie) children of <paramref name="parent"/>, from /proc.</summary>
    public static List<int> ChildrenOf(int parent)
    {
        var result = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                var fields = StatFields(pid);
                if (int.Parse(fields[1]) == parent && fields[0] != "Z") result.Add(pid);
            }
            catch (IOException) { }
        }
        return result;
    }

    public static bool IsAlive(int pid) => Syscall.kill(pid, 0) == 0 && !IsZombie(pid);

    private static bool IsZombie(int pid)
    {
        try { return StatFields(pid)[0] == "Z"; }
        catch (IOException) { return false; }
    }

    /// <summary>CPU time the process has used so far, user and system (utime + stime in /proc/PID/stat).</summary>
    public static TimeSpan CpuTime(int pid)
    {
        var f = StatFields(pid);
        return TimeSpan.FromSeconds((long.Parse(f[11]) + long.Parse(f[12])) / 100.0); // clock ticks: USER_HZ is 100 on Linux
    }

    /// <summary>
    /// One signal mask of each of the process's threads (/proc/PID/task/*/status: SigBlk is per thread;
    /// SigIgn, SigCgt are the process's), bit N-1 for signal N.
    /// </summary>
    public static IEnumerable<ulong> SignalMasks(int pid, string field) =>
        Directory.GetDirectories($"/proc/{pid}/task").Select(task =>
            Convert.ToUInt64(File.ReadLines(Path.Combine(task, "status")).Single(l => l.StartsWith(field + ":"))[(field.Length + 1)..].Trim(), 16));

    /// <summary>/proc/PID/stat after the command name (which may hold spaces): field 3 (state) is [0].</summary>
    private static string[] StatFields(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    }

    /// <summary>
    /// Stops <paramref name="parent"/> with <paramref name="signal"/> (KILL if it is still there after
    /// <paramref name="grace"/>), then KILLs whichever of <paramref name="children"/> outlived it; disposes it.
    /// </summary>
    public static void Stop(Process parent, Signum signal, TimeSpan grace, IEnumerable<int> children)
    {
        if (!parent.HasExited)
        {
            Syscall.kill(parent.Id, signal);
            if (!parent.WaitForExit(grace)) Syscall.kill(parent.Id, Signum.SIGKILL);
        }
        parent.WaitForExit(5_000);
        foreach (var pid in children.Where(IsAlive)) Syscall.kill(pid, Signum.SIGKILL);
        parent.Dispose();
    }
}
