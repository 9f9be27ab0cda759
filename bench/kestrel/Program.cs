// The same application as Prefork's sample app and bench/apps/wsgi_app.py, on Kestrel:
//   GET  /                  Hello, World! (13 bytes, text/plain)
//   GET  /bytes/16k, /bytes/1m
//   POST /echo-body         the request body, as sent
//   GET  /slow-async?ms=50  awaits (non-blocking), then answers
// Handlers write raw bytes with an explicit Content-Length so every server sends the same response.
var builder = WebApplication.CreateBuilder(args);
var app = builder.Build();

byte[] hello = "Hello, World!"u8.ToArray();
byte[] slept = "slept\n"u8.ToArray();
byte[] Blob(int size) => Enumerable.Range(0, size).Select(i => (byte)('a' + i % 26)).ToArray();
byte[] bytes16k = Blob(16 * 1024), bytes1m = Blob(1024 * 1024);

static Task Send(HttpContext ctx, string contentType, byte[] body)
{
    ctx.Response.ContentType = contentType;
    ctx.Response.ContentLength = body.Length;
    return ctx.Response.Body.WriteAsync(body).AsTask();
}

app.MapGet("/", ctx => Send(ctx, "text/plain", hello));
app.MapGet("/bytes/16k", ctx => Send(ctx, "application/octet-stream", bytes16k));
app.MapGet("/bytes/1m", ctx => Send(ctx, "application/octet-stream", bytes1m));
app.MapPost("/echo-body", async ctx =>
{
    using var body = new MemoryStream();
    await ctx.Request.Body.CopyToAsync(body);
    await Send(ctx, "application/octet-stream", body.ToArray());
});
app.MapGet("/slow-async", async ctx =>
{
    await Task.Delay(int.TryParse(ctx.Request.Query["ms"], out var ms) ? ms : 1000);
    await Send(ctx, "text/plain", slept);
});

app.Run();
