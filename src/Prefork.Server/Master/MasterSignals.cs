using System.Runtime.InteropServices;

namespace Prefork.Master;

/// <summary>
/// The signals the master acts on, declared once: the arbiter traps each of them, and a master started
/// with one of them ignored or blocked takes it back before anything else (<see cref="InheritedSignals"/>).
/// </summary>
internal static class MasterSignals
{
    /// <summary>.NET names no USR1 or USR2; their Linux numbers pass through PosixSignalRegistration as they are.</summary>
    public static readonly PosixSignal Usr1 = (PosixSignal)10, Usr2 = (PosixSignal)12;

    /// <summary>Each with its Linux number and name.</summary>
    public static readonly (PosixSignal Signal, int Number, string Name)[] Trapped =
    [
        (PosixSignal.SIGHUP, 1, "HUP"), (PosixSignal.SIGINT, 2, "INT"), (PosixSignal.SIGQUIT, 3, "QUIT"),
        (Usr1, 10, "USR1"), (Usr2, 12, "USR2"), (PosixSignal.SIGTERM, 15, "TERM"), (PosixSignal.SIGCHLD, 17, "CHLD"),
        (PosixSignal.SIGTTIN, 21, "TTIN"), (PosixSignal.SIGTTOU, 22, "TTOU"), (PosixSignal.SIGWINCH, 28, "WINCH"),
    ];
}
