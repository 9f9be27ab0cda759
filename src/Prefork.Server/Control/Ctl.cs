using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mono.Unix.Native;
using Prefork.Config;

namespace Prefork.Control;

/// <summary>
/// `prefork ctl [-c FILE] [--socket PATH] COMMAND [ARGS] [--json]`: one request to a running
/// master's control socket, its reply as a table (or as JSON with --json).
/// Exit codes: 0 done (status --ready: and ready); 1 the master refused or is not ready; 2 bad usage
/// or config; 3 no master answers on the socket.
/// </summary>
public static class Ctl
{
    public const int Ok = 0, Refused = 1, Usage = 2, Unreachable = 3;

    public const string Synopsis = "prefork ctl [-c FILE] [--socket PATH] COMMAND [ARGS] [--json]";

    public static readonly string Help = $"""
        usage: {Synopsis}
          top [-n COUNT]        status and workers, refreshed each second (COUNT frames, or until Ctrl-C)
          status [--ready]      master, generation, workers, listeners (--ready: exit 0 only at full strength)
          workers               one line per worker: pid, index, generation, state, requests, busy, RSS, CPU, age
          config                the running configuration (TOML)
          dump                  the requests in flight (each worker's oldest)
          scale N|+N|-N         set or change the number of workers
          reload | upgrade      as HUP | as USR2
          reopen                reopen the log files (as USR1)
          drain | resume        readiness (/ready, status --ready) says no | yes again; workers go on serving
          stop [--quick]        stop gracefully (or fast), and wait until the master is gone
          kill PID              stop that worker now; it is replaced at once
          recycle PID           replace that worker (the new one first; the old retires when it is ready)
        The socket is --socket, else the config's control_socket (-c FILE, or ./gateway.toml).
        Exit codes: 0 done, 1 refused (or not ready), 2 bad usage, 3 no master answers.

        """;

    public static int Run(string[] args)
    {
        string? configPath = null, socket = null;
        bool json = false, ready = false, quick = false;
        int frames = 0;
        var words = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-h" or "--help": Console.Write(Help); return Ok;
                case "--json": json = true; break;
                case "--ready": ready = true; break;
                case "--quick": quick = true; break;
                case "-n":
                    if (i + 1 >= args.Length || !int.TryParse(args[++i], out frames) || frames < 1) return Fail(Usage, "-n needs a count of frames (1 or more)");
                    break;
                case "-c" or "--config" or "--socket":
                    if (i + 1 >= args.Length) return Fail(Usage, $"{args[i]} needs a value");
                    if (args[i] == "--socket") socket = args[++i]; else configPath = args[++i];
                    break;
                default:
                    if (args[i].StartsWith("--")) return Fail(Usage, $"unknown option '{args[i]}'; see prefork ctl --help");
                    words.Add(args[i]);
                    break;
            }
        }
        if (words.Count == 0) return Fail(Usage, "no command; see prefork ctl --help");
        var command = words[0];
        if (!ControlProtocol.Commands.Contains(command) && command != "top") return Fail(Usage, $"unknown command '{command}'; see prefork ctl --help");
        if (socket is null)
        {
            try
            {
                configPath ??= File.Exists("gateway.toml") ? "gateway.toml" : null;
                socket = ControlServer.SocketPath(ConfigLoader.Load(configPath));
            }
            catch (ConfigException e) { return Fail(Usage, "invalid configuration: " + e.Message); }
            if (socket is null) return Fail(Usage, "control_socket is empty in the configuration: the control socket is disabled");
        }
        if (command == "top") return Top(socket, frames);
        var request = new JsonObject { ["id"] = 1, ["command"] = command, ["args"] = new JsonArray(words.Skip(1).Concat(quick ? ["quick"] : []).Select(a => (JsonNode)a!).ToArray()) };

        JsonObject reply;
        try { reply = Ask(socket, request); }
        catch (Exception e) when (e is SocketException or IOException or JsonException)
        {
            return Fail(Unreachable, $"no master answers on {socket}: {e.Message}");
        }
        if (reply["status"]?.ToString() != "ok")
        {
            if (json) Console.WriteLine(reply.ToJsonString());
            return Fail(Refused, reply["error"]?.ToString() ?? "error");
        }
        var data = reply["data"];
        if (json) Console.WriteLine(data?.ToJsonString(new JsonSerializerOptions(ControlProtocol.Json) { WriteIndented = true }));
        else Console.Write(Render(command, data));
        if (command == "status" && ready) return data?["ready"]?.GetValue<bool>() == true ? Ok : Refused;
        if (command == "stop") return WaitForExit(data?["master_pid"]?.GetValue<int>() ?? 0, json);
        return Ok;
    }

    /// <summary>
    /// A live view: status and the workers table each second. In a terminal (tmux too) each frame
    /// replaces the last (ANSI home and clear, nothing fancier); piped, frames follow one another.
    /// </summary>
    private static int Top(string socket, int frames)
    {
        bool terminal = !Console.IsOutputRedirected;
        for (int frame = 1; frames == 0 || frame <= frames; frame++)
        {
            JsonObject reply;
            try { reply = Ask(socket, new JsonObject { ["command"] = "status" }, TimeSpan.FromSeconds(5)); }
            catch (Exception e) when (e is SocketException or IOException or JsonException)
            {
                return Fail(Unreachable, $"no master answers on {socket}: {e.Message}");
            }
            if (reply["data"] is not { } data) return Fail(Refused, reply["error"]?.ToString() ?? "error");
            var text = Status(data) + "\n" + Workers(data["workers"]!.AsArray());
            Console.Write(terminal ? "\u001b[H\u001b[2J" + text : (frame > 1 ? "\n" : "") + text);
            if (frames == 0 || frame < frames) Thread.Sleep(1000);
        }
        return Ok;
    }

    /// <summary>One request, one reply line.</summary>
    public static JsonObject Ask(string socketPath, JsonObject request, TimeSpan? timeout = null)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.ReceiveTimeout = socket.SendTimeout = (int)(timeout ?? TimeSpan.FromSeconds(30)).TotalMilliseconds;
        socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        using var stream = new NetworkStream(socket);
        IOException? writeFailed = null;
        try { stream.Write(Encoding.UTF8.GetBytes(request.ToJsonString() + "\n")); }
        catch (IOException e) { writeFailed = e; } // a refused peer is answered and closed at once: its reply waits to be read
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string? line;
        try { line = reader.ReadLine(); }
        catch (IOException) when (writeFailed is not null) { throw writeFailed; }
        if (line is null) throw writeFailed ?? new IOException("the master closed the connection without a reply");
        return JsonNode.Parse(line) as JsonObject ?? throw new IOException("the reply is not a JSON object");
    }

    /// <summary>`stop` returns once the master is gone (it drains first), so a script can go on.</summary>
    private static int WaitForExit(int pid, bool json)
    {
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(10);
        while (pid > 0 && Syscall.kill(pid, 0) == 0)
        {
            if (DateTime.UtcNow > until) return Fail(Refused, $"master {pid} still runs");
            Thread.Sleep(100);
        }
        if (!json) Console.WriteLine($"master {pid} has exited");
        return Ok;
    }

    // ---- tables ------------------------------------------------------------------------------

    private static string Render(string command, JsonNode? data) => command switch
    {
        "status" => Status(data!),
        "workers" => Workers(data!["workers"]!.AsArray()),
        "config" => data!["toml"]!.ToString(),
        "dump" => Dump(data!["requests"]!.AsArray()),
        _ => data?["message"] + "\n",
    };

    private static string Status(JsonNode s)
    {
        var workers = s["workers"]!.AsArray();
        int generation = s["generation"]!.GetValue<int>();
        var sb = new StringBuilder();
        sb.AppendLine($"master      {s["master_pid"]} (prefork {s["version"]}), up {Duration(s["uptime_seconds"]!.GetValue<double>())}");
        sb.AppendLine($"generation  {generation}, {s["phase"]}{(s["ready"]!.GetValue<bool>() ? ", ready" : ", not at full strength")}{(s["winched"]!.GetValue<bool>() ? " (WINCH: no workers until HUP)" : "")}{(s["draining"]?.GetValue<bool>() == true ? " (draining: prefork ctl resume ends it)" : "")}");
        var byState = workers.GroupBy(w => w!["state"]!.ToString()).Select(g => $"{g.Count()} {g.Key}");
        sb.AppendLine($"workers     {workers.Count} ({string.Join(", ", byState)}); target {s["target_workers"]} {s["worker_kind"]}");
        sb.AppendLine($"requests    {s["counters"]!["requests"]}");
        foreach (var l in s["listeners"]!.AsArray())
            sb.AppendLine($"listening   {l!["address"]}" + (l["queue_length"] is { } q ? $" (accept queue {q} of {l["queue_max"]})" : ""));
        return sb.ToString();
    }

    private static string Workers(JsonArray workers)
    {
        var rows = new List<string[]> { new[] { "PID", "IDX", "GEN", "STATE", "REQUESTS", "BUSY", "RSS", "CPU%", "AGE", "HEARD" } };
        foreach (var w in workers)
        {
            double busy = w!["busy_seconds"]!.GetValue<double>();
            rows.Add([w["pid"]!.ToString(), w["index"]!.ToString(), w["generation"]!.ToString(), w["state"]!.ToString(), w["requests"]!.ToString(),
                busy < 0 ? "-" : $"{w["busy_request"]} ({busy.ToString("F1", CultureInfo.InvariantCulture)} s)",
                Mib(w["resident_bytes"]!.GetValue<long>()), w["cpu_percent"]!.GetValue<double>().ToString("F1", CultureInfo.InvariantCulture),
                Duration(w["age_seconds"]!.GetValue<double>()), w["last_heard_seconds"]!.GetValue<double>().ToString("F1", CultureInfo.InvariantCulture) + " s ago"]);
        }
        return Table(rows);
    }

    private static string Dump(JsonArray requests)
    {
        var rows = new List<string[]> { new[] { "PID", "IDX", "SECONDS", "REQUEST" } };
        foreach (var r in requests)
            rows.Add([r!["pid"]!.ToString(), r["index"]!.ToString(), r["seconds"]!.GetValue<double>().ToString("F1", CultureInfo.InvariantCulture), r["request"]!.ToString()]);
        return requests.Count == 0 ? "no request in flight\n" : Table(rows);
    }

    /// <summary>Columns padded to their widest cell, two spaces apart: plain text that reads in any terminal.</summary>
    private static string Table(List<string[]> rows)
    {
        var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var r in rows) sb.AppendLine(string.Join("  ", r.Select((cell, c) => cell.PadRight(widths[c]))).TrimEnd());
        return sb.ToString();
    }

    private static string Mib(long bytes) => bytes == 0 ? "-" : (bytes / 1048576.0).ToString("F1", CultureInfo.InvariantCulture) + " MiB";

    private static string Duration(double seconds) => seconds switch
    {
        < 60 => $"{(int)seconds}s",
        < 3600 => $"{(int)seconds / 60}m{(int)seconds % 60:00}s",
        < 86400 => $"{(int)seconds / 3600}h{(int)seconds % 3600 / 60:00}m",
        _ => $"{(int)seconds / 86400}d{(int)seconds % 86400 / 3600:00}h",
    };

    private static int Fail(int code, string message)
    {
        Console.Error.WriteLine("prefork ctl: " + message);
        return code;
    }
}
