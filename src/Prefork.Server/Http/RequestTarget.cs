namespace Prefork.Http;

/// <summary>The parts of a request-target.</summary>
public static class RequestTarget
{
    /// <summary>
    /// Path (percent-decoded) and query from an origin-form or absolute-form target, and the
    /// authority of an absolute-form one ("example.com:8080" for "http://example.com:8080/x"; else null).
    /// The asterisk-form "*" (OPTIONS) is path "*". There is no fragment: the parser refuses '#'.
    /// </summary>
    public static void Split(string target, out string? authority, out string path, out string query)
    {
        authority = null;
        var t = target.AsSpan();
        if (t.Length > 0 && t[0] != '/' && t[0] != '*')
        {
            // absolute-form: scheme://authority/path?query → /path?query
            int scheme = t.IndexOf("://");
            if (scheme > 0)
            {
                var afterScheme = t[(scheme + 3)..];
                int end = afterScheme.IndexOfAny('/', '?');
                authority = (end < 0 ? afterScheme : afterScheme[..end]).ToString();
                t = end < 0 ? "/" : afterScheme[end..];
                if (t[0] != '/') t = ("/" + t.ToString()).AsSpan();
            }
        }
        int q = t.IndexOf('?');
        var rawPath = q < 0 ? t : t[..q];
        query = q < 0 ? "" : t[(q + 1)..].ToString();
        path = rawPath.Contains('%') ? Uri.UnescapeDataString(rawPath.ToString())
            : rawPath.Length == target.Length ? target : rawPath.ToString(); // the common case allocates nothing
    }
}
