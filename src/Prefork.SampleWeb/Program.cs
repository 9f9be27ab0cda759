using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Prefork.AspNetCore;

// Content root = the build output (wwwroot is copied there): the master starts workers in another folder.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

// Optional TLS with HTTP/2 on every socket Prefork passes: SAMPLEWEB_CERT is a PFX (no password) or a PEM
// certificate with its key beside it (same name, .key).
var certificate = Environment.GetEnvironmentVariable("SAMPLEWEB_CERT") is { Length: > 0 } path ? LoadCertificate(path) : null;
builder.WebHost.UsePrefork(listen =>
{
    if (certificate is null) return;
    listen.Protocols = HttpProtocols.Http1AndHttp2;
    listen.UseHttps(certificate);
});
builder.Services.AddControllers();

var app = builder.Build();
app.UseWebSockets();
app.UseStaticFiles();
app.MapControllers();

app.MapGet("/", () => "Hello from ASP.NET Core");
app.MapGet("/pid", () => Environment.ProcessId.ToString());

app.MapGet("/slow", async (int? ms, CancellationToken aborted) =>
{
    if (ms is not (>= 0 and <= SampleLimits.MaxSlowMs)) return Results.BadRequest($"ms must be 0..{SampleLimits.MaxSlowMs}");
    await Task.Delay(ms.Value, aborted);
    return Results.Text($"slept {ms} ms");
});

// Chunked: each chunk is written and flushed on its own.
app.MapGet("/stream", async (HttpContext context, int? chunks) =>
{
    int n = chunks ?? 10;
    if (n is < 0 or > SampleLimits.MaxChunks)
    {
        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        await context.Response.WriteAsync($"chunks must be 0..{SampleLimits.MaxChunks}");
        return;
    }
    context.Response.ContentType = "text/plain";
    for (int i = 0; i < n; i++)
    {
        await context.Response.WriteAsync($"chunk {i}\n", context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
    }
});

// Echoes each message back until the client closes.
app.Map("/ws", async context =>
{
    if (!context.WebSockets.IsWebSocketRequest)
    {
        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        await context.Response.WriteAsync("a WebSocket upgrade is expected here");
        return;
    }
    using var socket = await context.WebSockets.AcceptWebSocketAsync();
    var buffer = new byte[4096];
    while (true)
    {
        var received = await socket.ReceiveAsync(buffer, context.RequestAborted);
        if (received.MessageType == WebSocketMessageType.Close)
        {
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
            return;
        }
        await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, context.RequestAborted);
    }
});

app.Run();

static X509Certificate2 LoadCertificate(string path) => path.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".p12", StringComparison.OrdinalIgnoreCase)
    ? X509CertificateLoader.LoadPkcs12FromFile(path, password: null)
    : X509Certificate2.CreateFromPemFile(path, Path.ChangeExtension(path, ".key"));

static class SampleLimits
{
    public const int MaxSlowMs = 60_000, MaxChunks = 10_000;
}
