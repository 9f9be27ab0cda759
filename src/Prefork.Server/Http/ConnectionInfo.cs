using System.Net;
using System.Net.Sockets;

namespace Prefork.Http;

/// <summary>The addresses of one connection, as strings the environment needs (and the peer's IP, for trust checks).</summary>
public sealed class ConnectionInfo
{
    public string RemoteAddr = "";
    public string RemotePort = "";
    public string LocalAddr = "";
    public string LocalPort = "";
    /// <summary>The peer's address; null on a unix socket.</summary>
    public IPAddress? RemoteIp;
    public bool IsUnixSocket;
    /// <summary>TLS: the connection is encrypted (gateway.url_scheme https).</summary>
    public bool Secure;
    /// <summary>TLS: SSL_CLIENT_VERIFY as mod_ssl says it: SUCCESS (a valid client certificate) or NONE.</summary>
    public string ClientVerify = "NONE";
    /// <summary>TLS: the client certificate's subject (SSL_CLIENT_S_DN) and the certificate as PEM (SSL_CLIENT_CERT); null without one.</summary>
    public string? ClientSubjectDn, ClientCertificatePem;

    public void Set(EndPoint? remote, EndPoint? local)
    {
        RemoteIp = (remote as IPEndPoint)?.Address;
        IsUnixSocket = remote is UnixDomainSocketEndPoint || local is UnixDomainSocketEndPoint;
        (RemoteAddr, RemotePort) = remote is IPEndPoint r ? (r.Address.ToString(), r.Port.ToString()) : ("", "");
        (LocalAddr, LocalPort) = local is IPEndPoint l ? (l.Address.ToString(), l.Port.ToString()) : ("localhost", "");
    }

    /// <summary>A PROXY protocol header replaces the addresses with the ones the proxy saw (the client is now the peer).</summary>
    public void Apply(ProxyHeader header)
    {
        if (header.Source is null || header.Destination is null) return;
        IsUnixSocket = false;
        RemoteIp = header.Source.Address;
        (RemoteAddr, RemotePort) = (header.Source.Address.ToString(), header.Source.Port.ToString());
        (LocalAddr, LocalPort) = (header.Destination.Address.ToString(), header.Destination.Port.ToString());
    }
}
