using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Prefork.Config;
using Serilog;

namespace Prefork.Connections;

/// <summary>
/// A worker's TLS side, loaded once when it boots (so once per config generation: the workers a
/// HUP starts read the certificate files again, which is how a renewal is picked up): the
/// certificate with its chain, the handshake options every connection shares, and the count of
/// failed handshakes.
/// </summary>
public sealed class TlsServer
{
    private long _handshakeFailures;

    private TlsServer(SslServerAuthenticationOptions options, X509Certificate2 certificate)
    {
        Options = options;
        Certificate = certificate;
    }

    public SslServerAuthenticationOptions Options { get; }
    public X509Certificate2 Certificate { get; }
    public long HandshakeFailures => Interlocked.Read(ref _handshakeFailures);

    /// <summary>
    /// Loads certfile, keyfile and ca_certs; null when TLS is off. Throws <see cref="ConfigException"/>
    /// saying which file is wrong and how (a worker reports it as its boot failure; --check-config too).
    /// </summary>
    public static TlsServer? Load(GatewayConfig c)
    {
        if (c.CertFile is not { } certFile)
        {
            if (c.KeyFile is not null || c.CaCerts is not null)
                throw new ConfigException("setting 'keyfile' or 'ca_certs' is set but 'certfile' is not: TLS needs a certificate");
            return null;
        }
        if (c.Get(Settings.ProxyProtocol)) throw new ConfigException("setting 'proxy_protocol' cannot be combined with TLS (certfile): terminate TLS in the proxy, or do not send PROXY headers");
        var certificate = LoadCertificate(certFile, c.KeyFile, c.KeyFilePassword);
        var chain = ReadPem(certFile, "certfile");
        chain.RemoveAt(0); // the server's own certificate: the rest are intermediates sent along
        if (certificate.NotAfter < DateTime.Now)
            Log.Warning("certfile {File}: the certificate expired on {NotAfter:u}; clients will refuse it", certFile, certificate.NotAfter.ToUniversalTime());

        bool askClients = c.Get(Settings.CertReqs) != "none", clientsMust = c.Get(Settings.CertReqs) == "required";
        X509ChainPolicy? clientPolicy = null;
        if (askClients)
        {
            if (c.CaCerts is not { } caFile) throw new ConfigException($"setting 'cert_reqs' = \"{c.Get(Settings.CertReqs)}\" needs 'ca_certs', the CAs client certificates must chain to");
            clientPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
            clientPolicy.CustomTrustStore.AddRange(ReadPem(caFile, "ca_certs").ToArray());
        }

        var protocols = SslProtocols.None;
        foreach (var p in c.Get(Settings.TlsProtocols)) protocols |= p == "TLSv1.3" ? SslProtocols.Tls13 : SslProtocols.Tls12;
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(certificate, new X509Certificate2Collection(chain.ToArray()), offline: true),
            EnabledSslProtocols = protocols,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            ClientCertificateRequired = askClients,
            CertificateChainPolicy = clientPolicy,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            // optional: a client may send none, but one it sends must be valid (as mod_ssl's `optional`).
            RemoteCertificateValidationCallback = (_, _, _, errors) =>
                errors == SslPolicyErrors.None || (errors == SslPolicyErrors.RemoteCertificateNotAvailable && !clientsMust),
        };
        try { options.CipherSuitesPolicy = new CipherSuitesPolicy(c.Ciphers); }
        catch (PlatformNotSupportedException e) { throw new ConfigException($"setting 'ciphers': {e.Message}"); }
        return new TlsServer(options, certificate);
    }

    /// <summary>A handshake failed (a scanner, plain HTTP on the TLS port, a refused client certificate): counted, logged at debug.</summary>
    public void HandshakeFailed(string remote, Exception e)
    {
        Interlocked.Increment(ref _handshakeFailures);
        Log.Debug("TLS handshake with {Remote} failed: {Reason}", remote, e.InnerException?.Message is { } inner ? $"{e.Message} ({inner})" : e.Message);
    }

    private static X509Certificate2 LoadCertificate(string certFile, string? keyFile, string? password)
    {
        Require(certFile, "certfile");
        if (keyFile is not null) Require(keyFile, "keyfile");
        try
        {
            // The first certificate of the file is the server's; the key must match it.
            return password is null
                ? X509Certificate2.CreateFromPemFile(certFile, keyFile)
                : X509Certificate2.CreateFromEncryptedPemFile(certFile, password, keyFile);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            var where = keyFile is null ? $"certfile \"{certFile}\" (with its key)" : $"certfile \"{certFile}\" with keyfile \"{keyFile}\"";
            var hint = password is null && e.Message.Contains("encrypted", StringComparison.OrdinalIgnoreCase)
                ? " (an encrypted key needs keyfile_password or $PREFORK_KEYFILE_PASSWORD)" : "";
            throw new ConfigException($"cannot load {where}: {e.Message}{hint}");
        }
    }

    private static List<X509Certificate2> ReadPem(string file, string setting)
    {
        Require(file, setting);
        var all = new X509Certificate2Collection();
        try { all.ImportFromPemFile(file); }
        catch (CryptographicException e) { throw new ConfigException($"{setting} \"{file}\": {e.Message}"); }
        if (all.Count == 0) throw new ConfigException($"{setting} \"{file}\" holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
        return all.ToList();
    }

    private static void Require(string file, string setting)
    {
        if (!File.Exists(file)) throw new ConfigException($"{setting} \"{file}\": no such file");
    }
}
