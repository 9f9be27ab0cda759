using System.Text;
using Prefork.Config;

namespace Prefork;

/// <summary>
/// prefork's manual, written once and rendered twice: as `prefork --help` (plain text, 80
/// columns) and as `prefork --man` (a roff man page, deploy/prefork.1). The SETTINGS section is
/// generated from <see cref="Settings.All"/>, so neither can drift from the code.
/// </summary>
public static class Manual
{
    private abstract record Block;
    private sealed record Para(string Text) : Block;
    private sealed record Item(string Term, string Text) : Block;
    private sealed record Sub(string Title) : Block;
    private sealed record Section(string Title, IReadOnlyList<Block> Blocks);

    private const int Width = 80, Indent = 7, ItemIndent = 14;

    private static readonly Dictionary<string, string> SectionTitles = new()
    {
        ["socket"] = "Server socket", ["worker"] = "Workers", ["limits"] = "Request limits",
        ["process"] = "Process", ["logging"] = "Logging", ["command"] = "Command workers (any program)", ["ssl"] = "TLS",
    };

    private static IEnumerable<Section> Sections()
    {
        yield return new("NAME", [new Para("prefork - pre-fork process supervisor and HTTP/1.1 server for .NET")]);
        yield return new("SYNOPSIS", [
            new Para("prefork [-c FILE] [OPTIONS] [SETTING FLAGS]"),
            new Para("prefork [-c FILE] [OPTIONS] -- PROGRAM [ARGS...]"),
            new Para("prefork --check-config [-c FILE]"),
            new Para(Control.Ctl.Synopsis),
            new Para("prefork --version | --help | --man"),
        ]);
        yield return new("DESCRIPTION", [
            new Para("prefork serves a .NET web application that implements Prefork.Gateway.IGatewayApplication (or IAsyncGatewayApplication), the way " +
                     "Gunicorn serves a WSGI application. A master process binds the listening sockets (or takes them from " +
                     "systemd) and starts `workers` worker processes that inherit them and accept connections. The master " +
                     "does not serve requests: it watches the workers, replaces those that die or stop answering within " +
                     "`timeout`, and reacts to signals."),
            new Para("A reload (HUP) re-reads the configuration and starts a new generation of workers; each old worker is " +
                     "retired only once its replacement reports ready, so capacity never dips and no request is lost. A " +
                     "graceful stop (TERM) lets workers finish their requests within `graceful_timeout`."),
            new Para("Under systemd, prefork reports its state over NOTIFY_SOCKET (READY=1 once every worker has booted, " +
                     "RELOADING=1 and READY=1 around each reload, STOPPING=1, a STATUS= line, WATCHDOG=1 pings) and uses " +
                     "sockets passed by socket activation instead of `bind`. See ENVIRONMENT."),
            new Para("With `command` (or `-- PROGRAM ARGS...` on the command line) the workers are that program instead of " +
                     "prefork's own HTTP engine: any server that takes its sockets the systemd way (LISTEN_FDS, LISTEN_PID, fds 3, 4, ...) " +
                     "and, ideally, says READY=1 and WATCHDOG=1 on NOTIFY_SOCKET (an ASP.NET Core app with Prefork.AspNetCore does). " +
                     "Reload, upgrade, timeouts, recycling and backoff work as for gateway workers; the settings marked " +
                     "\"Gateway workers only\" then do not apply."),
            new Para("`prefork ctl COMMAND` talks to a running master over its `control_socket`: top, status [--ready], workers, config, dump, " +
                     "scale N|+N|-N, reload, upgrade, reopen, stop [--quick], kill PID, recycle PID; tables by default, JSON with --json. " +
                     "Exit codes: 0 done, 1 refused (or not ready), 2 bad usage, 3 no master answers. With `metrics_bind` the master " +
                     "also serves Prometheus metrics (GET /metrics), /ready and /live."),
        ]);
        yield return new("OPTIONS", [
            new Item("-c, --config FILE", "The TOML configuration file. Default: ./gateway.toml if it exists, else built-in defaults. " +
                                          "Relative paths in it are resolved against its folder."),
            new Item("--check-config", "Validate the configuration and load the application, then exit: 0 if both are fine, 1 with the reason otherwise."),
            new Item("--print-config", "Print the effective configuration (defaults, file and flags merged) as TOML and exit."),
            new Item("-v, --version", "Print the version and exit."),
            new Item("-h, --help", "Print this manual and exit."),
            new Item("--man", "Print this manual as a man page (roff), e.g. prefork --man > /usr/local/share/man/man1/prefork.1"),
        ]);
        yield return new("SETTINGS", SettingBlocks().ToList());
        yield return new("SIGNALS", [
            new Para("Send these to the master (its pid is MAINPID under systemd, or the `pidfile`):"),
            new Item("HUP", "Reload: re-read the configuration and replace the workers by a new generation, gracefully. A configuration " +
                            "that does not load is refused and the running one is kept. A changed `bind` opens the new addresses and closes " +
                            "the dropped ones; listeners whose address is unchanged are kept."),
            new Item("TERM", "Graceful stop: workers stop accepting, finish their requests within graceful_timeout, then the master exits 0."),
            new Item("INT, QUIT", "Fast stop: workers exit at once."),
            new Item("TTIN, TTOU", "One worker more, one worker less (until the next reload)."),
            new Item("USR1", "Reopen the log files, in the master and every worker (for logrotate)."),
            new Item("USR2", "Upgrade in place: check the program now on disk (--check-config), then exec it keeping the master's pid " +
                             "and its listening sockets; the new program adopts the running workers and replaces them, each old one " +
                             "retired once its replacement is ready. If the check or the exec fails, the running master goes on and logs why."),
            new Item("WINCH", "Retire every worker; the master stays, and HUP brings the workers back."),
        ]);
        yield return new("ENVIRONMENT", [
            new Item("NOTIFY_SOCKET", "Set by systemd for Type=notify services: the Unix datagram socket (a path, or @name for an " +
                                      "abstract one) the master reports READY=1, RELOADING=1 with MONOTONIC_USEC, STOPPING=1, " +
                                      "STATUS= and MAINPID= to."),
            new Item("WATCHDOG_USEC, WATCHDOG_PID", "Set by systemd when WatchdogSec= is: the master sends WATCHDOG=1 every " +
                                                    "WATCHDOG_USEC/2 from its main loop, if WATCHDOG_PID is unset or its own pid."),
            new Item("LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES", "Set by systemd socket activation (or systemd-socket-activate): when " +
                                                               "LISTEN_PID is the master's pid, fds 3 to 3+LISTEN_FDS-1 are used instead " +
                                                               "of `bind`, and kept across reloads. To pick some of them, name them in " +
                                                               "`bind` as fd://3, fd://4..."),
            new Item("DOTNET_ROOT", "Where the .NET runtime is, if not in a default location (framework-dependent installs only)."),
            new Item("DOTNET_GCgen0size", "The gen0 budget of each worker's GC. Unset, epoll workers get 0x2000000 (32 MiB): with hundreds of " +
                                          "requests in flight, the runtime's cache-sized default makes every collection fault fresh pages " +
                                          "in. Set it (in the environment or raw_env) to choose; sync and threads workers keep the runtime's default."),
            new Item("PREFORK_*", "What the master passes to each worker (PREFORK_WORKER_INDEX, PREFORK_GENERATION, PREFORK_MASTER_PID, " +
                                  "PREFORK_LISTEN_FDS...). Applications may read them. Workers do not inherit NOTIFY_SOCKET, WATCHDOG_* " +
                                  "or LISTEN_*."),
        ]);
        yield return new("FILES", [
            new Item("./gateway.toml", "The configuration read when -c is not given."),
            new Item("/etc/prefork/gateway.toml", "The configuration the shipped systemd unit (deploy/prefork.service) uses."),
            new Item("/etc/systemd/system/prefork.service, prefork.socket", "The systemd units, from the deploy/ folder of the source."),
            new Item("/etc/logrotate.d/prefork", "Log rotation; it sends USR1 to the master."),
        ]);
        yield return new("EXIT STATUS", [
            new Item("0", "Stopped by TERM, INT or QUIT; or --check-config, --print-config, --version, --help succeeded."),
            new Item("1", "The configuration is invalid, a socket could not be bound, or --check-config could not load the application."),
            new Para("A worker that fails to boot (the application does not load, the user or group switch fails, OnWorkerStart " +
                     "throws) exits 4; the master logs why and retries " +
                     "with a growing delay, up to 30 s, instead of exiting."),
        ]);
        yield return new("EXAMPLES", [
            new Item("prefork -c gateway.toml", "Serve the application named by `app` in gateway.toml."),
            new Item("prefork -b 0.0.0.0:8000 -w 4 -a MyApp.dll:MyApp.Application", "Without a file: a flag sets any setting."),
            new Item("prefork -w 4 -b 127.0.0.1:8000 -- dotnet MyWeb.dll", "Run an ASP.NET Core app (with builder.WebHost.UsePrefork()) as 4 workers."),
            new Item("prefork --check-config -c /etc/prefork/gateway.toml", "Check a configuration before reloading a running server with it."),
            new Item("kill -HUP \"$(cat /run/prefork/prefork.pid)\"", "Reload gracefully (with pidfile = \"/run/prefork/prefork.pid\"); under systemd: systemctl reload prefork."),
            new Item("systemd-socket-activate -l 127.0.0.1:8000 prefork -c gateway.toml", "Try socket activation without installing a unit."),
        ]);
        yield return new("SEE ALSO", [new Para("systemd.service(5), systemd.socket(5), sd_notify(3), sd_listen_fds(3), logrotate(8), nginx(8), gunicorn(1)")]);
    }

    private static IEnumerable<Block> SettingBlocks()
    {
        yield return new Para("Every setting is a key in the configuration file and a command-line flag; flags override the file. " +
                              "HUP re-reads them all; those marked so take effect only at the next start (or USR2). Each flag is shown with the kind of value it takes, " +
                              "then come the key in the file, the default and what is allowed.");
        foreach (var section in Settings.All.GroupBy(s => s.Section))
        {
            yield return new Sub(SectionTitles.GetValueOrDefault(section.Key) ?? char.ToUpperInvariant(section.Key[0]) + section.Key[1..]);
            foreach (var s in section)
            {
                var flags = (s.ShortFlag is null ? "" : s.ShortFlag + ", ") + Settings.LongFlag(s) + Placeholder(s);
                yield return new Item(flags, $"{s.Doc}{(s.AppliesNote.Length > 0 ? " " + s.AppliesNote : "")} Key: {s.Key}. Default: {s.DefaultAsToml}. Allowed: {s.Allowed}.{(s.Reloadable ? "" : " Not changed by HUP: takes effect at the next start (or USR2).")}");
            }
        }
    }

    private static string Placeholder(Setting s) => s.Type switch
    {
        SettingType.Integer => " INT",
        SettingType.Number => " NUMBER",
        SettingType.Boolean => " [true|false]",
        SettingType.String when s.Choices is not null => " " + string.Join("|", s.Choices),
        SettingType.StringList => " VALUE (repeatable)",
        _ => " TEXT",
    };

    /// <summary>The manual as plain text, for --help.</summary>
    public static string Text()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"prefork {ServerInfo.Version}");
        foreach (var section in Sections())
        {
            sb.AppendLine().AppendLine(section.Title);
            Block? previous = null;
            foreach (var block in section.Blocks)
            {
                // A blank line around paragraphs and before subsections; a list of items stays compact.
                if (previous is not null && (block is Para or Sub || previous is Para)) sb.AppendLine();
                switch (block)
                {
                    case Para p: Wrap(sb, p.Text, Indent); break;
                    case Sub s: sb.Append(' ', 3).AppendLine(s.Title); break;
                    case Item i:
                        sb.Append(' ', Indent).AppendLine(i.Term);
                        Wrap(sb, i.Text, ItemIndent);
                        break;
                }
                previous = block;
            }
        }
        return sb.ToString();
    }

    private static void Wrap(StringBuilder sb, string text, int indent)
    {
        var line = new StringBuilder();
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && indent + line.Length + 1 + word.Length > Width)
            {
                sb.Append(' ', indent).AppendLine(line.ToString());
                line.Clear();
            }
            if (line.Length > 0) line.Append(' ');
            line.Append(word);
        }
        if (line.Length > 0) sb.Append(' ', indent).AppendLine(line.ToString());
    }

    /// <summary>The manual as a man page (roff, man macros), for --man and deploy/prefork.1.</summary>
    public static string Roff()
    {
        var sb = new StringBuilder();
        sb.AppendLine(".\\\" Generated by `prefork --man`; edit src/Prefork.Server/Manual.cs instead.");
        sb.AppendLine($".TH PREFORK 1 \"\" \"prefork {ServerInfo.Version}\" \"User Commands\"");
        foreach (var section in Sections())
        {
            sb.AppendLine($".SH {section.Title}");
            foreach (var block in section.Blocks)
            {
                switch (block)
                {
                    case Para p: sb.AppendLine(".PP").AppendLine(Escape(p.Text)); break;
                    case Sub s: sb.AppendLine($".SS {Escape(s.Title)}"); break;
                    case Item i: sb.AppendLine(".TP").AppendLine($"\\fB{Escape(i.Term)}\\fR").AppendLine(Escape(i.Text)); break;
                }
            }
        }
        return sb.ToString();
    }

    private static string Escape(string text)
    {
        var escaped = text.Replace("\\", "\\e").Replace("-", "\\-");
        // groff reads its input as Latin-1: anything beyond ASCII (…, é) goes as a \[uXXXX] escape.
        if (escaped.Any(c => c > '\x7f'))
            escaped = string.Concat(escaped.Select(c => c > '\x7f' ? $"\\[u{(int)c:X4}]" : c.ToString()));
        return escaped.StartsWith('.') || escaped.StartsWith('\'') ? "\\&" + escaped : escaped;
    }
}
