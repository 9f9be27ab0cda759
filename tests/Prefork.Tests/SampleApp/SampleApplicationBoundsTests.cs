using Prefork.Gateway;
using Prefork.SampleApp;

namespace Prefork.Tests.SampleApp;

/// <summary>
/// The sample app is the default `app`: what a client asks of its test routes must stay bounded
/// (a sleep of days, a blob of gigabytes, a cache that grows with every new size).
/// </summary>
public class SampleApplicationBoundsTests
{
    private static (string Status, string Body) Call(SampleApplication app, string path, string query = "")
    {
        string status = "";
        var body = app.Invoke(new RequestEnvironment { Method = "GET", PathInfo = path, QueryString = query }, (s, _) => status = s);
        return (status, body.IsSingle ? System.Text.Encoding.UTF8.GetString(body.Single.Span) : "");
    }

    [Theory]
    [InlineData("/slow", "ms=300001")]
    [InlineData("/slow", "ms=-1")] // Thread.Sleep(-1) would sleep forever
    [InlineData("/slow", "ms=99999999999")]
    [InlineData("/slow-async", "ms=86400000")]
    [InlineData("/async-stream", "n=2&ms=300001")]
    [InlineData("/stream", "n=2147483647")]
    public void A_wait_or_count_out_of_bounds_gets_400_with_the_bounds(string path, string query)
    {
        var (status, body) = Call(new SampleApplication(), path, query);
        Assert.Equal("400 Bad Request", status);
        Assert.Contains("from 0 to", body);
    }

    [Theory]
    [InlineData("/bytes/64m", 200)]
    [InlineData("/bytes/65536k", 200)]
    [InlineData("/bytes/0", 200)]
    [InlineData("/bytes/65m", 400)]
    [InlineData("/bytes/67108865", 400)]
    [InlineData("/bytes/2147483647", 400)]
    [InlineData("/bytes/-1", 400)]
    [InlineData("/bytes/x", 400)]
    public void Bytes_are_capped_at_64_MiB(string path, int expected)
    {
        var (status, body) = Call(new SampleApplication(), path);
        Assert.StartsWith(expected.ToString(), status);
        if (expected == 400) Assert.Contains("64m", body);
    }

    [Fact]
    public void The_blob_cache_stops_growing_at_its_cap_and_still_answers()
    {
        var app = new SampleApplication();
        // Sizes from 60 MiB up, each new: three would pass the 128 MiB cap.
        for (int i = 0; i < 4; i++)
        {
            int size = SampleApplication.MaxBlob - 4096 * (i + 1);
            string status = "";
            var body = app.Invoke(new RequestEnvironment { Method = "GET", PathInfo = $"/bytes/{size}" }, (s, _) => status = s);
            Assert.Equal("200 OK", status);
            Assert.Equal(size, body.Single.Length);
            Assert.True(app.CachedBytes <= SampleApplication.MaxCachedBlobs, $"{app.CachedBytes} bytes cached");
        }
        Assert.True(app.CachedBytes > 0);
    }

    [Fact]
    public void Waits_within_bounds_are_served()
    {
        Assert.Equal("200 OK", Call(new SampleApplication(), "/slow", "ms=0").Status);
        Assert.Equal("200 OK", Call(new SampleApplication(), "/stream", "n=3").Status);
    }
}
