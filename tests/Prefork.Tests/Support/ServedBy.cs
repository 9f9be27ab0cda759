using System.Text.Json;

namespace Prefork.Tests.Support;

/// <summary>The sample app's answer to /pid: the worker that served the request (its pid and index) and its master's pid.</summary>
public sealed record ServedBy(int Pid, int Index, int Master)
{
    public static ServedBy Parse(HttpResponse response) => From(JsonDocument.Parse(response.Body).RootElement);

    public static ServedBy Parse(string json) => From(JsonDocument.Parse(json).RootElement);

    private static ServedBy From(JsonElement e) =>
        new(e.GetProperty("pid").GetInt32(), e.GetProperty("index").GetInt32(), e.GetProperty("master").GetInt32());
}
