using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TechEmpowerGateway;

public sealed record Message(string message);

[JsonSerializable(typeof(Message))]
[JsonSerializable(typeof(World))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
internal sealed partial class JsonContext : JsonSerializerContext;

/// <summary>The bodies of the four tests, built per request as TechEmpower's rules ask (no caching).</summary>
public static class Pages
{
    public static readonly byte[] Plaintext = "Hello, World!"u8.ToArray();

    public static byte[] Json() => JsonSerializer.SerializeToUtf8Bytes(new Message("Hello, World!"), JsonContext.Default.Message);

    public static byte[] Json(World world) => JsonSerializer.SerializeToUtf8Bytes(world, JsonContext.Default.World);

    /// <summary>
    /// The fortunes test: add the request-time fortune, sort by message (ordinal, as every
    /// implementation sorts), HTML-escape every message, render the table.
    /// </summary>
    public static byte[] Fortunes(List<Fortune> fortunes)
    {
        fortunes.Add(new Fortune(0, "Additional fortune added at request time."));
        fortunes.Sort(static (a, b) => string.CompareOrdinal(a.Message, b.Message));
        var html = new StringBuilder(1600);
        html.Append("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>");
        foreach (var fortune in fortunes)
            html.Append("<tr><td>").Append(fortune.Id).Append("</td><td>")
                .Append(WebUtility.HtmlEncode(fortune.Message)).Append("</td></tr>");
        html.Append("</table></body></html>");
        return Encoding.UTF8.GetBytes(html.ToString());
    }
}
