namespace Prefork.Master;

/// <summary>
/// Every .NET process creates its diagnostics endpoints in $TMPDIR (`clr-debug-pipe-PID-KEY-in/out`,
/// `dotnet-diagnostic-PID-KEY-socket`) and deletes them when it exits, but not when it is killed.
/// A master that kills hung workers for months would fill /tmp with them, so it removes a killed
/// worker's (only after reaping it: until then its pid cannot be reused).
/// </summary>
public static class RuntimeLeftovers
{
    public static void Remove(int pid)
    {
        try
        {
            var tmp = Path.GetTempPath();
            foreach (var pattern in new[] { $"clr-debug-pipe-{pid}-*", $"dotnet-diagnostic-{pid}-*" })
                foreach (var file in Directory.EnumerateFiles(tmp, pattern))
                    File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // another user's, or gone already
    }
}
