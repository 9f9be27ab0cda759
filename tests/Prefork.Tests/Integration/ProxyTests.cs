using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// Proxies in front of the server, over real sockets: X-Forwarded-*/Forwarded believed only from
/// forwarded_allow_ips, and the PROXY protocol (v1 text, v2 binary) from proxy_allow_ips.
/// </summary>
public sealed class ProxyTests
{
    private const string EchoApp = "app = \"Prefork.SampleApp:Prefork.SampleApp.EchoApplication\"\n";

    private static JsonElement Echo(HttpResponse r)
    {
        Assert.Equal(200, r.Status);
        return JsonDocument.Parse(r.Body).RootElement;
    }

    private static (string? Addr, string? Port, string? Scheme) Client(JsonElement e) =>
        (e.GetProperty("remote_addr").GetString(), e.GetProperty("remote_port").GetString(), e.GetProperty("scheme").GetString());

    private static byte[] V2Ipv6(string source, int sourcePort, string destination, int destinationPort)
    {
        var block = IPAddress.Parse(source).GetAddressBytes().Concat(IPAddress.Parse(destination).GetAddressBytes())
            .Concat(new[] { (byte)(sourcePort >> 8), (byte)sourcePort, (byte)(destinationPort >> 8), (byte)destinationPort }).ToArray();
        return [.. "\r\n\r\n\0\r\nQUIT\n"u8.ToArray(), 0x21, 0x21, 0, (byte)block.Length, .. block];
    }

    [Fact]
    public void PROXY_protocol_v1_and_v2_give_the_client_address_and_forwarded_headers_count_from_trusted_clients_only()
    {
        using var server = PreforkServer.Start(EchoApp + "proxy_protocol = true\nforwarded_allow_ips = [\"10.0.0.0/8\"]", workers: 1);
        var pids = server.WaitForWorkers(1);

        using (var socket = RawHttp.Connect(server.Port))
        {
            var reader = new ResponseReader(socket);
            // 203.0.113.7 is no trusted proxy, so its own X-Forwarded-* are not believed.
            socket.Send(Encoding.ASCII.GetBytes("PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n" +
                "GET /1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"));
            var first = Echo(reader.Read());
            Assert.Equal(("203.0.113.7", "40000", "http"), Client(first));
            Assert.Contains(first.GetProperty("headers").EnumerateArray(), h => h[0].GetString() == "X-Forwarded-For"); // still shown to the app
            Assert.Equal(("203.0.113.7", "40000", "http"), Client(Echo(reader.Read())));
        }

        // 10.1.2.3 is in forwarded_allow_ips: a proxy behind the load balancer, whose headers count.
        var trusted = RawHttp.Send(server.Port, "PROXY TCP4 10.1.2.3 192.0.2.1 40000 443\r\n" +
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.4\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
        Assert.Equal(("198.51.100.4", "", "https"), Client(Echo(trusted)));
        var conflict = RawHttp.Send(server.Port, "PROXY TCP4 10.1.2.3 192.0.2.1 40000 443\r\n" +
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n");
        Assert.Equal(400, conflict.Status);
        Assert.True(conflict.Closed);

        var v2 = RawHttp.Send(server.Port, [.. V2Ipv6("2001:db8::7", 51000, "2001:db8::1", 443),
            .. "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray()]);
        Assert.Equal(("2001:db8::7", "51000", "http"), Client(Echo(v2)));

        // Without a header: refused. A proxy's health check that connects and leaves: nothing to answer.
        var missing = RawHttp.Send(server.Port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(400, missing.Status);
        Assert.True(missing.Closed);
        using (var probe = RawHttp.Connect(server.Port)) probe.Shutdown(SocketShutdown.Both);

        Assert.Equal(200, RawHttp.Send(server.Port, "PROXY UNKNOWN\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").Status);
        Assert.Equal(pids, server.WorkerPids());
    }

    [Fact]
    public void PROXY_protocol_from_a_peer_not_in_proxy_allow_ips_is_403()
    {
        using var server = PreforkServer.Start(EchoApp + "proxy_protocol = true\nproxy_allow_ips = [\"10.9.9.9\", \"fd00::/8\"]", workers: 1);
        var r = RawHttp.Send(server.Port, "PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(403, r.Status);
        Assert.True(r.Closed);
        Assert.Null(r.Header("X-Prefork-Echo"));
    }
}
