using System.Runtime.InteropServices;
using Mono.Unix.Native;

namespace Prefork.Interop;

/// <summary>Process calls wrapped for the master and workers: exec and reap on Mono.Unix, the process name on prctl (Native).</summary>
internal static class Libc
{
    private const int PR_SET_NAME = 15;

    /// <summary>
    /// Replaces this process's image, keeping its pid and every fd without FD_CLOEXEC. Returns errno, only on failure.
    /// execve with an explicit environment: Mono's execv would pass the native environ, which .NET does not update.
    /// </summary>
    public static int Exec(string path, IReadOnlyList<string> argv, IEnumerable<string> environment)
    {
        Syscall.execve(path, [.. argv, null!], [.. environment, null!]); // NULL-terminated, as execve(2) wants
        return Marshal.GetLastPInvokeError();
    }

    /// <summary>Non-blocking reap of one child we did not start with Process (a worker adopted across an in-place upgrade).</summary>
    public static bool TryReap(int pid, out int exitCode, out int signal)
    {
        exitCode = signal = 0;
        int r = Syscall.waitpid(pid, out int status, WaitOptions.WNOHANG);
        if (r == 0) return false;
        if (r < 0) { exitCode = -1; return true; } // ECHILD: someone else reaped it; it is gone
        // Decoded by hand, not with Syscall.WTERMSIG: that maps to Mono's Signum and throws on a real-time signal.
        if ((status & 0x7f) == 0) exitCode = (status >> 8) & 0xff;
        else signal = status & 0x7f;
        return true;
    }

    /// <summary>
    /// `user` and `group` (names or numbers) as the uid and gid a worker runs with: the user's primary
    /// group unless `group` is set; this process's own ids for what is empty. Null when both are empty.
    /// Gateway workers switch to them themselves; command workers through setpriv(1).
    /// </summary>
    public static (uint Uid, uint Gid)? ResolveIdentity(string user, string group)
    {
        if (user.Length == 0 && group.Length == 0) return null;
        uint uid = Syscall.getuid(), gid = Syscall.getgid();
        if (user.Length > 0)
        {
            var pw = uint.TryParse(user, out var n) ? Syscall.getpwuid(n) : Syscall.getpwnam(user);
            if (pw is null && !uint.TryParse(user, out _)) throw new UnauthorizedAccessException($"user = \"{user}\": no such user");
            uid = pw?.pw_uid ?? n;
            gid = pw?.pw_gid ?? gid;
        }
        if (group.Length > 0)
        {
            var gr = uint.TryParse(group, out var n) ? null : Syscall.getgrnam(group);
            if (gr is null && !uint.TryParse(group, out _)) throw new UnauthorizedAccessException($"group = \"{group}\": no such group");
            gid = gr?.gr_gid ?? n;
        }
        return (uid, gid);
    }

    /// <summary>Names the calling thread; on the main thread that is the name `ps` and `top` show (15 bytes at most).</summary>
    public static void SetProcessName(string name)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(name);
        Native.prctl(PR_SET_NAME, bytes.Length > 15 ? System.Text.Encoding.UTF8.GetString(bytes, 0, 15) : name, 0, 0, 0);
    }
}
