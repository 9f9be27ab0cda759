namespace Prefork.Tests.Support;

/// <summary>Bounded polling, for what a test depends on but is not told about.</summary>
public static class Wait
{
    /// <summary>Polls <paramref name="condition"/> until it holds (true) or <paramref name="timeout"/> has passed (false).</summary>
    public static bool Until(Func<bool> condition, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow >= until) return false;
            Thread.Sleep(50);
        }
        return true;
    }

    /// <summary>Fails unless the file at <paramref name="path"/> contains <paramref name="text"/> within 90 s (as long as a master gets to be ready on a loaded machine).</summary>
    public static void ForFileToContain(string path, string text)
    {
        if (!Until(() => File.Exists(path) && File.ReadAllText(path).Contains(text), TimeSpan.FromSeconds(90)))
            Assert.Fail($"{path} does not contain '{text}'" + (File.Exists(path) ? ":\n" + File.ReadAllText(path) : " (no such file)"));
    }
}
