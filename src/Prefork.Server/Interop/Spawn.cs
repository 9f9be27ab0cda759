using System.Runtime.InteropServices;

namespace Prefork.Interop;

/// <summary>
/// posix_spawn(3) for command workers: the child gets exactly the fds it is given, at the numbers
/// it is given, and nothing else.
///
/// Why not Process.Start: it can place no fd at a chosen number (systemd's protocol wants the
/// sockets at 3, 4, …) and it passes every fd without FD_CLOEXEC (the listening sockets at their
/// own numbers, another worker's pipe during its spawn). Why not fork: unsafe inside the CLR.
/// glibc's posix_spawn runs the file actions in a vfork-like child before exec, which is safe from
/// a multi-threaded runtime. The caller reaps the child itself (waitpid, see <see cref="Libc.TryReap"/>).
/// </summary>
internal static unsafe partial class Spawn
{
    private const string LibC = "libc";
    // Opaque glibc structures (80 and 336 bytes on 64-bit); allocated larger, never read.
    private const int FileActionsSize = 512, AttrSize = 1024, SigsetSize = 128;
    private const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08;
    private const int O_RDONLY = 0;

    [LibraryImport(LibC)] private static partial int posix_spawn_file_actions_init(void* actions);
    [LibraryImport(LibC)] private static partial int posix_spawn_file_actions_destroy(void* actions);
    [LibraryImport(LibC)] private static partial int posix_spawn_file_actions_adddup2(void* actions, int fd, int newFd);
    [LibraryImport(LibC, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int posix_spawn_file_actions_addopen(void* actions, int fd, string path, int flags, uint mode);
    [LibraryImport(LibC)] private static partial int posix_spawn_file_actions_addclosefrom_np(void* actions, int from); // glibc 2.34
    [LibraryImport(LibC, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int posix_spawn_file_actions_addchdir_np(void* actions, string path); // glibc 2.29
    [LibraryImport(LibC)] private static partial int posix_spawnattr_init(void* attr);
    [LibraryImport(LibC)] private static partial int posix_spawnattr_destroy(void* attr);
    [LibraryImport(LibC)] private static partial int posix_spawnattr_setflags(void* attr, short flags);
    [LibraryImport(LibC)] private static partial int posix_spawnattr_setsigmask(void* attr, void* set);
    [LibraryImport(LibC)] private static partial int posix_spawnattr_setsigdefault(void* attr, void* set);
    [LibraryImport(LibC)] private static partial int sigemptyset(void* set);
    [LibraryImport(LibC)] private static partial int sigfillset(void* set);
    [LibraryImport(LibC)] private static partial int posix_spawn(int* pid, byte* path, void* actions, void* attr, byte** argv, byte** envp);

    /// <summary>
    /// Starts <paramref name="path"/> with <paramref name="argv"/> and exactly <paramref name="environment"/>,
    /// in <paramref name="workingDirectory"/>, with stdin from /dev/null and, for each (from, to) in
    /// <paramref name="fds"/>, fd `from` of this process at `to` in the child. Every other fd is closed
    /// (closefrom past the highest `to`). Signal dispositions and mask start at their defaults: the
    /// runtime ignores SIGPIPE, and an ignored signal would stay ignored across exec.
    /// A `from` must not be another pair's `to` (the caller duplicates its fds above them first).
    /// Returns the child's pid, or throws with errno's meaning.
    /// </summary>
    public static int Start(string path, IReadOnlyList<string> argv, IReadOnlyList<string> environment, string workingDirectory,
        IReadOnlyList<(int From, int To)> fds)
    {
        var actions = NativeMemory.AllocZeroed(FileActionsSize);
        var attr = NativeMemory.AllocZeroed(AttrSize);
        var sigset = NativeMemory.AllocZeroed(SigsetSize);
        var strings = new List<nint>();
        try
        {
            Check(posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
            Check(posix_spawnattr_init(attr), "posix_spawnattr_init");
            Check(posix_spawn_file_actions_addopen(actions, 0, "/dev/null", O_RDONLY, 0), "addopen /dev/null");
            foreach (var (from, to) in fds) Check(posix_spawn_file_actions_adddup2(actions, from, to), "adddup2"); // dup2 clears FD_CLOEXEC on `to`
            Check(posix_spawn_file_actions_addclosefrom_np(actions, fds.Count == 0 ? 3 : Math.Max(3, fds.Max(f => f.To) + 1)), "addclosefrom_np");
            Check(posix_spawn_file_actions_addchdir_np(actions, workingDirectory), "addchdir_np");
            sigemptyset(sigset);
            Check(posix_spawnattr_setsigmask(attr, sigset), "setsigmask");
            sigfillset(sigset);
            Check(posix_spawnattr_setsigdefault(attr, sigset), "setsigdefault");
            Check(posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK), "setflags");

            byte** argvp = StringArray(argv, strings);
            byte** envp = StringArray(environment, strings);
            byte* pathp = Utf8(path, strings);
            int pid;
            int error = posix_spawn(&pid, pathp, actions, attr, argvp, envp);
            if (error != 0) throw new IOException($"cannot start {path}: {Mono.Unix.Native.NativeConvert.ToErrno(error)}");
            return pid;
        }
        finally
        {
            posix_spawn_file_actions_destroy(actions);
            posix_spawnattr_destroy(attr);
            NativeMemory.Free(actions);
            NativeMemory.Free(attr);
            NativeMemory.Free(sigset);
            foreach (var p in strings) NativeMemory.Free((void*)p);
        }
    }

    private static void Check(int error, string what)
    {
        if (error != 0) throw new IOException($"{what} failed: {Mono.Unix.Native.NativeConvert.ToErrno(error)}");
    }

    private static byte** StringArray(IReadOnlyList<string> items, List<nint> owned)
    {
        var array = (byte**)NativeMemory.AllocZeroed((nuint)(items.Count + 1), (nuint)sizeof(byte*)); // NULL-terminated
        owned.Add((nint)array);
        for (int i = 0; i < items.Count; i++) array[i] = Utf8(items[i], owned);
        return array;
    }

    private static byte* Utf8(string text, List<nint> owned)
    {
        int length = System.Text.Encoding.UTF8.GetByteCount(text);
        var bytes = (byte*)NativeMemory.Alloc((nuint)length + 1);
        owned.Add((nint)bytes);
        System.Text.Encoding.UTF8.GetBytes(text, new Span<byte>(bytes, length));
        bytes[length] = 0;
        return bytes;
    }
}
