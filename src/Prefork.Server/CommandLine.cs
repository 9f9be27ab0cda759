using System.Diagnostics.CodeAnalysis;
using System.Text;
using Prefork.Gateway;
using Prefork.Config;
using Prefork.Connections;
using Prefork.Master;
using Prefork.Worker;
using Serilog;

namespace Prefork;

/// <summary>
/// `prefork [OPTIONS]`: parses the command line and runs the master (or, when the master
/// spawned us, a worker). Every setting has a flag, generated from its declaration.
/// </summary>
public static class CommandLine
{
    /// <summary>The `prefork` executable: workers load the application named by `app`.</summary>
    [RequiresUnreferencedCode(AppLoader.ByName)]
    public static int Run(string[] args) => Run(args, AppLoader.Load);

    /// <summary>
    /// Runs the command line; <paramref name="loadApp"/> is how a worker (and --check-config) gets the
    /// application: by name (AppLoader), or the one linked into this executable (PreforkHost), whose
    /// ASSEMBLY:TYPE <paramref name="linkedApp"/> then stands as `app` (logs, ctl), before any flag. Only the
    /// master's command line asks for it: a worker gets `app` from its master, and working the name out reads
    /// reflection metadata, which every NativeAOT worker's start would pay for nothing.
    /// </summary>
    internal static int Run(string[] args, Func<GatewayConfig, object> loadApp, Func<string>? linkedApp = null)
    {
        if (args.Length == 1 && args[0] == ServerInfo.WorkerFlag) return WorkerProcess.Run(loadApp);
        if (args.Length > 0 && args[0] == "ctl") return Control.Ctl.Run(args[1..]); // talk to a running master

        string? configPath = null;
        bool check = false, print = false;
        var overrides = new List<KeyValuePair<string, string>>();
        if (linkedApp is not null) overrides.Add(new(Settings.App.Key, linkedApp()));
        for (int i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                // prefork [OPTIONS] -- PROGRAM ARGS...: everything after is the command workers run (the `command` setting).
                if (i + 1 >= args.Length) return Fail("-- needs a program to run as the workers: prefork [OPTIONS] -- PROGRAM [ARGS...]");
                overrides.AddRange(args[(i + 1)..].Select(a => new KeyValuePair<string, string>(Settings.Command.Key, a)));
                break;
            }
            string? inlineValue = null;
            if (arg.StartsWith("--") && arg.Contains('='))
            {
                inlineValue = arg[(arg.IndexOf('=') + 1)..];
                arg = arg[..arg.IndexOf('=')];
            }
            string Value()
            {
                if (inlineValue is not null) return inlineValue;
                if (i + 1 >= args.Length) throw new ConfigException($"{arg} needs a value");
                return args[++i];
            }
            switch (arg)
            {
                case "-h" or "--help": Console.Write(Help()); return 0;
                case "-v" or "--version": Console.WriteLine($"prefork {ServerInfo.Version}"); return 0;
                case "--man": Console.Write(Manual.Roff()); return 0;
                case "--check-config": check = true; continue;
                case "--print-config": print = true; continue;
                case "--settings-markdown": Console.Write(SettingsMarkdown()); return 0; // regenerates the README's table
                case "-c" or "--config":
                    try { configPath = Value(); }
                    catch (ConfigException e) { return Fail(e.Message); }
                    continue;
            }
            var setting = Settings.All.FirstOrDefault(s => s.ShortFlag == arg || Settings.LongFlag(s) == arg);
            if (setting is null) return Fail($"unknown option '{arg}'; see prefork --help");
            try
            {
                if (setting.Type == SettingType.Boolean && inlineValue is null && (i + 1 >= args.Length || args[i + 1].StartsWith('-')))
                    overrides.Add(new(setting.Key, "true"));
                else overrides.Add(new(setting.Key, Value()));
            }
            catch (ConfigException e) { return Fail(e.Message); }
        }
        configPath ??= File.Exists("gateway.toml") ? "gateway.toml" : null;

        GatewayConfig config;
        try
        {
            config = ConfigLoader.Load(configPath, overrides);
        }
        catch (ConfigException e)
        {
            return Fail("invalid configuration: " + e.Message);
        }
        if (print)
        {
            Console.Write(config.ToToml());
            return 0;
        }
        if (check && config.RunsCommand)
        {
            if (CommandCheck.Problem(config) is { } problem) return Fail("the configuration is valid but " + problem);
            Console.WriteLine($"{configPath ?? "(defaults)"}: configuration OK, command {config.Get(Settings.Command)[0]} found");
            return 0;
        }
        if (check)
        {
            try
            {
                loadApp(config);
            }
            catch (AppLoadException e)
            {
                return Fail("the configuration is valid but the app does not load: " + e.Message);
            }
            string tls;
            try
            {
                tls = TlsServer.Load(config) is { } server ? $", TLS certificate {server.Certificate.Subject} valid until {server.Certificate.NotAfter.ToUniversalTime():u}" : "";
            }
            catch (ConfigException e)
            {
                return Fail("the configuration is valid but TLS does not load: " + e.Message);
            }
            Console.WriteLine($"{configPath ?? "(defaults)"}: configuration OK, app {config.Get(Settings.App)} loads{tls}");
            return 0;
        }

        if (InheritedSignals.ResetAndExecIfAny() is { } execFailed) Console.Error.WriteLine("prefork: warning: " + execFailed);
        Logging.Logging.Configure(config, "");
        if (InheritedSignals.TakeReset() is { } reset)
            Log.Information("Signals {Signals} when prefork started (nohup? a parent's signal mask?); reset to their defaults, unblocked and taken", reset);
        try
        {
            return new Arbiter(config, configPath, overrides).Run();
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine("prefork: error: " + message);
        return 1;
    }

    /// <summary>The help text: the manual (settings included, generated from their declarations) as plain text.</summary>
    public static string Help() => Manual.Text();

    /// <summary>The README's settings table, from the same declarations (a test keeps the README in step).</summary>
    public static string SettingsMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("| setting | flag | default | allowed | what it does |");
        sb.AppendLine("|---|---|---|---|---|");
        foreach (var s in Settings.All)
        {
            var flag = (s.ShortFlag is null ? "" : $"`{s.ShortFlag}`, ") + $"`{Settings.LongFlag(s)}`";
            sb.AppendLine($"| `{s.Key}` | {flag} | `{s.DefaultAsToml.Replace("|", "\\|")}` | {s.Allowed} | {s.Doc.Replace("|", "\\|")}{(s.AppliesNote.Length > 0 ? " *" + s.AppliesNote + "*" : "")}{(s.Reloadable ? "" : " *Not changed by HUP: next start or USR2.*")} |");
        }
        return sb.ToString();
    }
}
