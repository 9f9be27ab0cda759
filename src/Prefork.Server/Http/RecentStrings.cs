using System.Text;

namespace Prefork.Http;

/// <summary>
/// The strings one connection's requests keep repeating (the target, Host, User-Agent, cookies):
/// new bytes are compared with the last strings made and an equal one is reused, so a client that
/// repeats itself costs no allocation per request. Strings are immutable, so sharing them with the
/// application is safe. One instance per connection: not thread-safe.
/// </summary>
public sealed class RecentStrings
{
    private const int MaxCachedLength = 512;
    private readonly string?[] _slots = new string?[32];
    private int _next;

    /// <summary>The Latin-1 string of <paramref name="bytes"/>, reused when it was seen lately.</summary>
    public string Get(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return "";
        foreach (var s in _slots)
            if (s is not null && Same(s, bytes)) return s;
        var made = Encoding.Latin1.GetString(bytes);
        if (bytes.Length <= MaxCachedLength)
        {
            _slots[_next] = made;
            _next = (_next + 1) % _slots.Length;
        }
        return made;
    }

    private static bool Same(string s, ReadOnlySpan<byte> bytes)
    {
        if (s.Length != bytes.Length) return false;
        for (int i = 0; i < bytes.Length; i++)
            if (s[i] != bytes[i]) return false;
        return true;
    }
}
