using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Prefork.Control;

/// <summary>
/// The control socket's words. Framing: one JSON object per line (UTF-8, ending in '\n') each way,
/// a request at most <see cref="MaxRequestBytes"/> long; several requests may share a connection.
///   request  {"id": 1, "command": "scale", "args": ["+1"]}          id is optional and echoed back
///   reply    {"id": 1, "status": "ok", "data": {...}}   or   {"id": 1, "status": "error", "error": "why"}
/// Commands: status, workers, config, dump (read the master's last snapshot); scale N|+N|-N, reload,
/// upgrade, reopen, drain, resume, stop [quick], kill PID, recycle PID (carried out by the master's loop, which
/// replies with what it did, or why not).
/// </summary>
public sealed class ControlProtocol(Func<StatusSnapshot?> snapshot, CommandQueue commands)
{
    public const int MaxRequestBytes = 64 * 1024;
    /// <summary>How long a request waits for the master's loop before it is answered with an error.</summary>
    public static readonly TimeSpan LoopTimeout = TimeSpan.FromSeconds(15);

    public static readonly IReadOnlyList<string> Commands =
        ["status", "workers", "config", "dump", "scale", "reload", "upgrade", "reopen", "drain", "resume", "stop", "kill", "recycle"];

    /// <summary>snake_case names; the snapshot's metadata generated at build time (<see cref="ControlJson"/>), not reflected.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = ControlJson.Default,
    };

    /// <summary>Answers one request line with one reply line (ending in '\n'). Never throws for what a client sends.</summary>
    public string Handle(string line)
    {
        JsonNode? id = null;
        string command;
        string[] args;
        try
        {
            if (JsonNode.Parse(line) is not JsonObject request) return ErrorLine(null, "a request is one JSON object per line: {\"command\": \"status\"}");
            id = request["id"]?.DeepClone();
            command = request["command"] is JsonValue c && c.TryGetValue<string>(out var name) ? name : "";
            args = request["args"] is JsonArray list ? list.Select(a => a?.ToString() ?? "").ToArray() : [];
        }
        catch (JsonException e)
        {
            return ErrorLine(null, "not JSON: " + e.Message);
        }
        try
        {
            return Answer(id, command, args);
        }
        catch (ArgumentException e)
        {
            return ErrorLine(id, e.Message);
        }
    }

    private string Answer(JsonNode? id, string command, string[] args)
    {
        var status = snapshot() ?? throw new ArgumentException("the master is starting; retry");
        switch (command)
        {
            case "status": return OkLine(id, JsonSerializer.SerializeToNode(status, Json.GetTypeInfo(typeof(StatusSnapshot))));
            case "workers": return OkLine(id, new JsonObject { ["workers"] = JsonSerializer.SerializeToNode(status.Workers, Json.GetTypeInfo(typeof(IReadOnlyList<WorkerStatus>))) });
            case "config": return OkLine(id, new JsonObject { ["path"] = status.ConfigPath, ["toml"] = status.ConfigToml });
            case "dump":
                var busy = status.Workers.Where(w => w.BusySeconds >= 0)
                    .Select(w => new JsonObject { ["pid"] = w.Pid, ["index"] = w.Index, ["request"] = w.BusyRequest, ["seconds"] = w.BusySeconds });
                return OkLine(id, new JsonObject { ["requests"] = new JsonArray(busy.ToArray<JsonNode>()) });
            case "upgrade":
                commands.Enqueue(new MasterCommand.Signal((PosixSignal)12)); // as USR2: the master execs the program on disk
                return OkLine(id, new JsonObject { ["message"] = "upgrade started (as USR2); the error log says how it went", ["master_pid"] = status.MasterPid });
            case "":
                throw new ArgumentException("no command; known: " + string.Join(", ", Commands));
        }
        MasterCommand ask = command switch
        {
            "scale" => Scale(args),
            "reload" => new MasterCommand.Reload(),
            "reopen" => new MasterCommand.Reopen(),
            "drain" => new MasterCommand.Drain(true),
            "resume" => new MasterCommand.Drain(false),
            "stop" => new MasterCommand.Stop(args is ["quick"] or ["--quick"]),
            "kill" => new MasterCommand.KillWorker(Pid(args)),
            "recycle" => new MasterCommand.RecycleWorker(Pid(args)),
            _ => throw new ArgumentException($"unknown command '{command}'; known: {string.Join(", ", Commands)}"),
        };
        ask = MasterCommand.Asked(ask);
        commands.Enqueue(ask);
        if (!ask.Done!.Task.Wait(LoopTimeout))
        {
            // Never carried out after its asker was told it failed: dropped unless the loop has just taken it.
            if (ask.TryAbandon()) return ErrorLine(id, $"the master's loop did not take it within {LoopTimeout.TotalSeconds} s; dropped, not carried out");
            if (!ask.Done.Task.Wait(LoopTimeout)) return ErrorLine(id, $"the master took it but had not finished it after {2 * LoopTimeout.TotalSeconds} s; see the error log");
        }
        var result = ask.Done.Task.Result;
        return result.Error is { } error ? ErrorLine(id, error)
            : OkLine(id, new JsonObject { ["message"] = result.Message, ["master_pid"] = status.MasterPid });
    }

    private static MasterCommand.Scale Scale(string[] args)
    {
        if (args is not [var n] || n.Length == 0) throw new ArgumentException("scale takes one argument: N, +N or -N");
        if (!int.TryParse(n, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value))
            throw new ArgumentException($"scale: '{n}' is not N, +N or -N");
        if (n[0] is '+' or '-') return new MasterCommand.Scale(null, value);
        if (value is < 1 or > 1024) throw new ArgumentException($"scale: {value} workers is out of range (1 to 1024)");
        return new MasterCommand.Scale(value, 0);
    }

    private static int Pid(string[] args) =>
        args is [var text] && int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid) && pid > 0
            ? pid : throw new ArgumentException("takes one argument: the worker's PID");

    public static string OkLine(JsonNode? id, JsonNode? data) =>
        new JsonObject { ["id"] = id, ["status"] = "ok", ["data"] = data }.ToJsonString(Json) + "\n";

    public static string ErrorLine(JsonNode? id, string error) =>
        new JsonObject { ["id"] = id, ["status"] = "error", ["error"] = error }.ToJsonString(Json) + "\n";
}

/// <summary>The JSON metadata of what the control socket sends, generated at build time (trimming and NativeAOT allow no reflection).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(StatusSnapshot))]
[JsonSerializable(typeof(IReadOnlyList<WorkerStatus>))]
internal sealed partial class ControlJson : JsonSerializerContext;
