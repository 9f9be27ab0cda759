using System.Reflection;
using System.Reflection.Emit;
using Prefork.Master;

namespace Prefork.Tests;

/// <summary>
/// The server's namespaces (Prefork with the command line, Prefork.Config, .Master, .Worker, .Engines, .Connections, .Http, .Logging,
/// .Systemd, .Interop…) form layers: no namespace may depend, directly or through others, on one that depends on it.
/// </summary>
public sealed class NamespaceDependencyTests
{
    [Fact]
    public void The_server_namespaces_have_no_dependency_cycle()
    {
        var graph = Dependencies(typeof(Arbiter).Assembly);
        Assert.True(graph.Count >= 8, "the graph misses namespaces: " + string.Join(", ", graph.Keys));
        Assert.Equal("", FindCycle(graph));
    }

    [Fact]
    public void The_engines_depend_on_neither_the_worker_process_nor_the_master()
    {
        // The engines accept and serve connections with what EngineContext gives them; the worker process
        // (boot, pipe to the master, the app) makes that context and picks the engine, not the other way round.
        var graph = Dependencies(typeof(Arbiter).Assembly);
        Assert.True(graph.ContainsKey("Prefork.Engines"), "no Prefork.Engines namespace: " + string.Join(", ", graph.Keys));
        var below = Reachable(graph, "Prefork.Engines");
        Assert.Contains("Prefork.Connections", below);
        Assert.DoesNotContain("Prefork.Worker", below);
        Assert.DoesNotContain("Prefork.Master", below);
    }

    [Fact]
    public void The_dependency_reader_sees_references_made_only_inside_method_bodies()
    {
        // LogFile names Native only inside its method bodies (write, dup3): no field or signature does,
        // so only the IL shows the edge. A reader that missed body references would let most cycles pass.
        var graph = Dependencies(typeof(Arbiter).Assembly);
        Assert.Contains("Prefork.Config", graph["Prefork.Master"]);
        Assert.Contains("Prefork.Interop", graph["Prefork.Logging"]);
        Assert.Equal("Prefork.Config -> Prefork.Master -> Prefork.Config",
            FindCycle(new() { ["Prefork.Config"] = ["Prefork.Master"], ["Prefork.Master"] = ["Prefork.Config"] }));
    }

    /// <summary>Namespace → the namespaces of this assembly its types use: in base types, members' signatures, locals, and IL operands.</summary>
    internal static Dictionary<string, HashSet<string>> Dependencies(Assembly assembly)
    {
        var opcodes = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => (ushort)o.Value);
        const BindingFlags declared = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic |
                                      BindingFlags.Instance | BindingFlags.Static;
        var graph = new Dictionary<string, HashSet<string>>();
        foreach (var type in assembly.GetTypes())
        {
            var from = NamespaceOf(type);
            if (from is null) continue;
            var uses = graph.TryGetValue(from, out var set) ? set : graph[from] = [];
            void Use(Type? t)
            {
                if (t is null) return;
                if (t.HasElementType) { Use(t.GetElementType()); return; }
                if (t.IsGenericType && !t.IsGenericTypeDefinition) foreach (var a in t.GetGenericArguments()) Use(a);
                if (NamespaceOf(t) is { } to && to != from) uses.Add(to);
            }
            Use(type.BaseType);
            foreach (var i in type.GetInterfaces()) Use(i);
            foreach (var f in type.GetFields(declared)) Use(f.FieldType);
            foreach (var p in type.GetProperties(declared)) Use(p.PropertyType);
            foreach (var method in type.GetMethods(declared).Concat<MethodBase>(type.GetConstructors(declared)))
            {
                if (method is MethodInfo m) Use(m.ReturnType);
                foreach (var p in method.GetParameters()) Use(p.ParameterType);
                var body = method.GetMethodBody();
                if (body is null) continue;
                foreach (var local in body.LocalVariables) Use(local.LocalType);
                var il = body.GetILAsByteArray()!;
                for (int at = 0; at < il.Length;)
                {
                    var op = il[at] == 0xFE ? opcodes[(ushort)(0xFE00 | il[at + 1])] : opcodes[il[at]];
                    at += op.Size;
                    if (op.OperandType is OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok)
                    {
                        var member = type.Module.ResolveMember(BitConverter.ToInt32(il, at),
                            type.IsGenericType ? type.GetGenericArguments() : null,
                            method.IsGenericMethod ? method.GetGenericArguments() : null);
                        Use(member as Type ?? member?.DeclaringType);
                    }
                    at += op.OperandType switch
                    {
                        OperandType.InlineNone => 0,
                        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                        OperandType.InlineVar => 2,
                        OperandType.InlineI8 or OperandType.InlineR => 8,
                        OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, at),
                        _ => 4,
                    };
                }
            }
        }
        return graph;

        // Only the server's own namespaces: Prefork (the command line, on top) and Prefork.*; compiler- and
        // generator-made types (no namespace, System.Text.RegularExpressions.Generated) are skipped.
        string? NamespaceOf(Type t) => t.Assembly == assembly && t.Namespace is { } ns &&
            (ns == "Prefork" || ns.StartsWith("Prefork.", StringComparison.Ordinal)) ? ns : null;
    }

    /// <summary>Every namespace <paramref name="from"/> depends on, directly or through others.</summary>
    internal static HashSet<string> Reachable(Dictionary<string, HashSet<string>> graph, string from)
    {
        var seen = new HashSet<string>();
        var next = new Stack<string>([from]);
        while (next.TryPop(out var node))
            foreach (var to in graph.GetValueOrDefault(node) ?? [])
                if (seen.Add(to)) next.Push(to);
        return seen;
    }

    /// <summary>One cycle as "A -> B -> A", or "" when there is none (depth-first search).</summary>
    internal static string FindCycle(Dictionary<string, HashSet<string>> graph)
    {
        var done = new HashSet<string>();
        var path = new List<string>();
        string Visit(string node)
        {
            int onPath = path.IndexOf(node);
            if (onPath >= 0) return string.Join(" -> ", path.Skip(onPath).Append(node));
            if (!done.Add(node)) return "";
            path.Add(node);
            foreach (var next in graph.GetValueOrDefault(node) ?? [])
                if (Visit(next) is { Length: > 0 } cycle) return cycle;
            path.RemoveAt(path.Count - 1);
            return "";
        }
        return graph.Keys.Order(StringComparer.Ordinal).Select(Visit).FirstOrDefault(c => c.Length > 0) ?? "";
    }
}
