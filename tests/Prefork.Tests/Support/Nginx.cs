using System.Diagnostics;
using System.Net.Sockets;
using Mono.Unix.Native;

namespace Prefork.Tests.Support;

/// <summary>
/// Debian's nginx with deploy/nginx.conf, run in the foreground from a temp prefix (its own
/// pid file, logs and temp folders), listening on 127.0.0.1. Stopped by pid when disposed.
/// </summary>
public sealed class Nginx : IDisposable
{
    private readonly Process _process;
    private readonly CapturedOutput _output;
    private string Prefix { get; }
    public int Port { get; }

    public string ErrorLog => File.Exists(Path.Combine(Prefix, "error.log")) ? File.ReadAllText(Path.Combine(Prefix, "error.log")) : "";

    /// <summary>Starts nginx with <paramref name="siteConfig"/> (http-context directives) included.</summary>
    public Nginx(string siteConfig)
    {
        Prefix = Directory.CreateTempSubdirectory("prefork-nginx-").FullName;
        // Run as root (as in CI), nginx's workers switch to an unprivileged user: let them in.
        File.SetUnixFileMode(Prefix, (UnixFileMode)0b111_101_101);
        Port = PreforkServer.FreePort();
        File.WriteAllText(Path.Combine(Prefix, "site.conf"), siteConfig.Replace("listen 80;", $"listen 127.0.0.1:{Port};"));
        File.WriteAllText(Path.Combine(Prefix, "nginx.conf"), $$"""
            worker_processes 1;
            events { worker_connections 1024; }
            http {
                access_log {{Prefix}}/access.log;
                client_body_temp_path {{Prefix}}/body;
                proxy_temp_path {{Prefix}}/proxy;
                fastcgi_temp_path {{Prefix}}/fastcgi;
                uwsgi_temp_path {{Prefix}}/uwsgi;
                scgi_temp_path {{Prefix}}/scgi;
                include {{Prefix}}/site.conf;
            }
            """);
        var psi = new ProcessStartInfo("nginx")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Prefix,
        };
        foreach (var a in new[] { "-c", Path.Combine(Prefix, "nginx.conf"), "-p", Prefix,
                     "-g", $"daemon off; pid {Prefix}/nginx.pid; error_log {Prefix}/error.log info;" })
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _output = new CapturedOutput(_process);
        WaitUntilListening();
    }

    private void WaitUntilListening()
    {
        var until = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < until)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"nginx exited ({_process.ExitCode}): {_output.Text}\n{ErrorLog}");
            try
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Connect("127.0.0.1", Port);
                return;
            }
            catch (SocketException) { Thread.Sleep(50); }
        }
        throw new TimeoutException($"nginx not listening on {Port}: {_output.Text}\n{ErrorLog}");
    }

    public void Dispose()
    {
        // QUIT is graceful: nginx's workers exit with it.
        Processes.Stop(_process, Signum.SIGQUIT, TimeSpan.FromSeconds(10), Processes.ChildrenOf(_process.Id));
        try { Directory.Delete(Prefix, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
