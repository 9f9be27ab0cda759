using Prefork.Config;

namespace Prefork.Http;

/// <summary>The parser's limits, taken from the config once per worker.</summary>
public sealed record HttpLimits(int RequestLine, int Fields, int FieldSize, long Body)
{
    /// <summary>The limits the settings' defaults give (declared once, in Settings).</summary>
    public static readonly HttpLimits Default = From(ConfigLoader.Parse(null, null));

    public static HttpLimits From(GatewayConfig c) =>
        new(c.LimitRequestLine, c.LimitRequestFields, c.LimitRequestFieldSize, c.Get(Settings.LimitRequestBody));

    /// <summary>The largest head the parser will buffer before refusing.</summary>
    public int MaxHeadBytes => RequestLine + 2 + Fields * (FieldSize + 2) + 2;
}
