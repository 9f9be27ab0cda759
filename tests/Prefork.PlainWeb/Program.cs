// The template's app, as anyone writes it: nothing here knows about Prefork.
var builder = WebApplication.CreateBuilder(args);
var app = builder.Build();
app.MapGet("/", () => "Hello from an unmodified app");
app.MapGet("/pid", () => Environment.ProcessId.ToString());
app.MapGet("/slow", async (int ms) => { await Task.Delay(Math.Clamp(ms, 0, 60_000)); return "slept"; });
app.Run();
