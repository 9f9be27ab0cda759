namespace Prefork.Gateway;

/// <summary>
/// The request's header fields in arrival order. Names compare case-insensitively; a name sent
/// several times keeps every value (<see cref="GetAll"/>), and <see cref="this[string]"/> joins
/// them with ", " as RFC 9110 §5.3 allows.
/// </summary>
public sealed class RequestHeaders : IReadOnlyList<KeyValuePair<string, string>>
{
    private readonly List<KeyValuePair<string, string>> _fields = new(16);

    public int Count => _fields.Count;
    public KeyValuePair<string, string> this[int index] => _fields[index];

    /// <summary>The field's value, several values joined by ", ", or null when absent.</summary>
    public string? this[string name]
    {
        get
        {
            string? found = null;
            foreach (var field in _fields)
            {
                if (!string.Equals(field.Key, name, StringComparison.OrdinalIgnoreCase)) continue;
                found = found is null ? field.Value : found + ", " + field.Value;
            }
            return found;
        }
    }

    public IEnumerable<string> GetAll(string name)
    {
        foreach (var field in _fields)
            if (string.Equals(field.Key, name, StringComparison.OrdinalIgnoreCase))
                yield return field.Value;
    }

    public bool Contains(string name)
    {
        foreach (var field in _fields)
            if (string.Equals(field.Key, name, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }

    /// <summary>Used by the server while parsing.</summary>
    public void Add(string name, string value) => _fields.Add(new(name, value));

    /// <summary>Used by the server between requests on one connection.</summary>
    public void Clear() => _fields.Clear();

    public List<KeyValuePair<string, string>>.Enumerator GetEnumerator() => _fields.GetEnumerator();
    IEnumerator<KeyValuePair<string, string>> IEnumerable<KeyValuePair<string, string>>.GetEnumerator() => _fields.GetEnumerator();
    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => _fields.GetEnumerator();
}
