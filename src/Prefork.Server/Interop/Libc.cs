using System.Runtime.InteropServices;

namespace Prefork.Interop;

/// <summary>The few libc calls Mono.Unix does not offer (or offers without what we need).</summary>
internal static partial class Libc
{
    /// <summary>execve(2) with an explicit environment: Mono's execv would pass the native environ, which .NET does not update.</summary>
    [DllImport("libc", SetLastError = true)]
    private static extern int execve(string path, string?[] argv, string?[] envp);

    [DllImport("libc", SetLastError = true)]
    private static extern int waitpid(int pid, out int status, int options);

    [DllImport("libc", SetLastError = true)]
    private static extern int prctl(int option, string arg2, IntPtr arg3, IntPtr arg4, IntPtr arg5);

    [DllImport("libc")]
    public static extern uint umask(uint mask);

    private const int WNOHANG = 1, PR_SET_NAME = 15;

    /// <summary>Replaces this process's image, keeping its pid and every fd without FD_CLOEXEC. Returns only on failure.</summary>
    public static int Exec(string path, IReadOnlyList<string> argv, IEnumerable<string> environment)
    {
        execve(path, [.. argv, null], [.. environment, null]);
        return Marshal.GetLastPInvokeError();
    }

    /// <summary>Non-blocking reap of one child we did not start with Process (a worker adopted across an in-place upgrade).</summary>
    public static bool TryReap(int pid, out int exitCode, out int signal)
    {
        exitCode = signal = 0;
        int r = waitpid(pid, out int status, WNOHANG);
        if (r == 0) return false;
        if (r < 0) { exitCode = -1; return true; } // ECHILD: someone else reaped it; it is gone
        if ((status & 0x7f) == 0) exitCode = (status >> 8) & 0xff;
        else signal = status & 0x7f;
        return true;
    }

    /// <summary>Names the calling thread; on the main thread that is the name `ps` and `top` show (15 bytes at most).</summary>
    public static void SetProcessName(string name)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(name);
        prctl(PR_SET_NAME, bytes.Length > 15 ? System.Text.Encoding.UTF8.GetString(bytes, 0, 15) : name, 0, 0, 0);
    }
}
