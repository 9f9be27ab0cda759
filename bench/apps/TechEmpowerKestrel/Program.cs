// TechEmpower's four tests on ASP.NET Core (minimal API), the same queries and bytes as
// bench/apps/TechEmpowerGateway: GET /plaintext, /json, /db, /fortunes. Async Npgsql with one pool
// per process (TECHEMPOWER_DB, the Npgsql connection string: pool size and auto-prepare in it).
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Npgsql;
using Prefork.AspNetCore;

var builder = WebApplication.CreateSlimBuilder(args);
builder.WebHost.UsePrefork();
builder.Logging.ClearProviders();
var app = builder.Build();

var connectionString = new NpgsqlConnectionStringBuilder(Environment.GetEnvironmentVariable("TECHEMPOWER_DB")
    ?? throw new InvalidOperationException("TECHEMPOWER_DB is not set: give the Npgsql connection string"))
{ NoResetOnClose = true };
if (connectionString.MaxAutoPrepare == 0) connectionString.MaxAutoPrepare = 4;
await using var db = NpgsqlDataSource.Create(connectionString.ConnectionString);
byte[] hello = "Hello, World!"u8.ToArray();

static Task Send(HttpContext ctx, string contentType, byte[] body)
{
    ctx.Response.ContentType = contentType;
    ctx.Response.ContentLength = body.Length;
    return ctx.Response.Body.WriteAsync(body).AsTask();
}

app.MapGet("/plaintext", ctx => Send(ctx, "text/plain", hello));
app.MapGet("/json", ctx => Send(ctx, "application/json",
    JsonSerializer.SerializeToUtf8Bytes(new Message("Hello, World!"), AppJson.Default.Message)));
app.MapGet("/db", async ctx =>
{
    await using var command = db.CreateCommand("SELECT id, randomnumber FROM world WHERE id = $1");
    command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = Random.Shared.Next(1, 10001) });
    World world;
    await using (var reader = await command.ExecuteReaderAsync())
    {
        await reader.ReadAsync();
        world = new World(reader.GetInt32(0), reader.GetInt32(1));
    }
    await Send(ctx, "application/json", JsonSerializer.SerializeToUtf8Bytes(world, AppJson.Default.World));
});
app.MapGet("/fortunes", async ctx =>
{
    var fortunes = new List<(int Id, string Message)>(16);
    await using (var command = db.CreateCommand("SELECT id, message FROM fortune"))
    await using (var reader = await command.ExecuteReaderAsync())
        while (await reader.ReadAsync()) fortunes.Add((reader.GetInt32(0), reader.GetString(1)));
    fortunes.Add((0, "Additional fortune added at request time."));
    fortunes.Sort(static (a, b) => string.CompareOrdinal(a.Message, b.Message));
    var html = new StringBuilder(1600);
    html.Append("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>");
    foreach (var (id, message) in fortunes)
        html.Append("<tr><td>").Append(id).Append("</td><td>").Append(WebUtility.HtmlEncode(message)).Append("</td></tr>");
    html.Append("</table></body></html>");
    await Send(ctx, "text/html; charset=utf-8", Encoding.UTF8.GetBytes(html.ToString()));
});

app.Run();

record Message(string message);
readonly record struct World(int Id, int RandomNumber);

[JsonSerializable(typeof(Message))]
[JsonSerializable(typeof(World))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
partial class AppJson : JsonSerializerContext;
