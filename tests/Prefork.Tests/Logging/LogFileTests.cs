using System.Diagnostics;
using System.Text;
using Mono.Unix.Native;
using Prefork.Config;
using Prefork.Gateway;
using Prefork.Http;
using Prefork.Logging;
using Prefork.Tests.Support;

namespace Prefork.Tests.Logging;

/// <summary>The line writer under the logs: a failing destination drops lines and never throws; USR1's reopen follows a moved file.</summary>
public sealed class LogFileTests
{
    [Fact]
    public void An_access_log_on_a_full_disk_drops_its_lines_and_never_throws()
    {
        using var log = new AccessLog(ConfigLoader.Parse("accesslog = \"/dev/full\"\n", null));
        var env = new RequestEnvironment { RemoteAddr = "192.0.2.7", PathInfo = "/" };
        var head = new RequestHead { Method = "GET", Target = "/", VersionMinor = 1 };
        for (int i = 0; i < 5_000; i++) log.Write(env, head, 200, 12, Stopwatch.GetTimestamp()); // well past any 64 KiB buffer
    }

    [Fact]
    public void Writing_to_a_pipe_nobody_reads_any_more_fails_with_EPIPE_and_is_counted()
    {
        Assert.Equal(0, Syscall.pipe(out int read, out int write));
        var file = LogFile.Open($"/proc/self/fd/{write}", standardFd: 1); // a second descriptor on the pipe's write end
        Syscall.close(write);
        try
        {
            Assert.True(file.Write("before\n"u8));
            Syscall.close(read);
            Assert.False(file.Write("after\n"u8)); // EPIPE (the runtime ignores SIGPIPE), not an exception
            Assert.Equal((int)Errno.EPIPE, file.LastError);
            Assert.Equal(1, file.Dropped);
        }
        finally { file.Dispose(); }
    }

    [Fact]
    public void Reopen_writes_to_a_new_file_at_the_same_path_after_the_old_one_was_moved()
    {
        var path = Path.Combine(Path.GetTempPath(), $"prefork-logfile-{Guid.NewGuid():N}.log");
        try
        {
            using (var file = LogFile.Open(path, standardFd: 1))
            {
                Assert.True(file.Write("one\n"u8));
                File.Move(path, path + ".1");
                file.Reopen();
                Assert.True(file.Write(Encoding.UTF8.GetBytes("two é\n")));
            }
            Assert.Equal("one\n", File.ReadAllText(path + ".1"));
            Assert.Equal("two é\n", File.ReadAllText(path));
        }
        finally
        {
            File.Delete(path);
            File.Delete(path + ".1");
        }
    }

    [Fact]
    public void A_standard_descriptor_redirected_to_a_file_without_O_APPEND_gets_it()
    {
        var path = Path.Combine(Path.GetTempPath(), $"prefork-logfile-{Guid.NewGuid():N}.log");
        int fd = Syscall.open(path, OpenFlags.O_WRONLY | OpenFlags.O_CREAT | OpenFlags.O_TRUNC, FilePermissions.DEFFILEMODE); // as `>` opens it
        try
        {
            Assert.Equal(0, Syscall.fcntl(fd, FcntlCommand.F_GETFL) & (int)OpenFlags.O_APPEND);
            using var file = LogFile.Open("-", standardFd: fd);
            Assert.NotEqual(0, Syscall.fcntl(fd, FcntlCommand.F_GETFL) & (int)OpenFlags.O_APPEND);
            File.AppendAllText(path, "someone else\n"); // another writer: our next line goes after it, not over it
            Assert.True(file.Write("ours\n"u8));
            Assert.Equal("someone else\nours\n", File.ReadAllText(path));
        }
        finally
        {
            Syscall.close(fd);
            File.Delete(path);
        }
    }

    [Fact]
    public void An_error_log_that_cannot_be_opened_falls_back_to_stderr_and_says_why()
    {
        // The folder of the error log is a file: nothing can be created there.
        using var server = PreforkServer.Start("errorlog = \"gateway.toml/error.log\"", workers: 1);
        server.WaitForLog("Logging to stderr instead", TimeSpan.FromSeconds(10));
        Assert.Equal(200, server.Get("/").Status);
    }
}
