using System.Text.RegularExpressions;
using Prefork.Config;
using Prefork.Tests.Support;
using YamlDotNet.RepresentationModel;

namespace Prefork.Tests.Deploy;

/// <summary>
/// deploy/k8s as kubectl renders it (`kubectl kustomize`, no cluster needed), checked against the
/// gateway.toml it carries in its ConfigMap: the probes reach the master's metrics_bind, the grace
/// period outlasts preStop plus graceful_timeout, the pod runs as non-root on a read-only root with
/// the control socket on a writable volume, and Prefork itself accepts that gateway.toml.
/// </summary>
public sealed class KubernetesManifestTests
{
    private static readonly Lazy<Rendered> Manifests = new(Render);

    private sealed record Rendered(YamlMappingNode ConfigMap, YamlMappingNode Service, YamlMappingNode Deployment, string GatewayToml)
    {
        public GatewayConfig Config => ConfigLoader.Parse(GatewayToml, null);
        public YamlMappingNode PodSpec => Map(Deployment, "spec", "template", "spec");
        public YamlMappingNode Container => Assert.Single(Seq(PodSpec, "containers").Cast<YamlMappingNode>());
    }

    private static Rendered Render()
    {
        // Required, not optional: a machine without kubectl fails here rather than skipping.
        var kubectl = new[] { "/usr/bin/kubectl", "/usr/local/bin/kubectl" }.FirstOrDefault(File.Exists);
        Assert.True(kubectl is not null, "kubectl is needed to render deploy/k8s (kubectl kustomize) and was not found in /usr/bin or /usr/local/bin");
        var (code, output) = Repo.Run(kubectl, ["kustomize", Repo.File("deploy/k8s")], timeout: TimeSpan.FromMinutes(1));
        Assert.True(code == 0, output);

        var stream = new YamlStream();
        stream.Load(new StringReader(output));
        var byKind = stream.Documents.Select(d => (YamlMappingNode)d.RootNode).ToDictionary(d => Text(d, "kind"));
        Assert.Equal(["ConfigMap", "Deployment", "Service"], byKind.Keys.Order());
        var configMap = byKind["ConfigMap"];
        var toml = Text(configMap, "data", "gateway.toml");
        // configMapGenerator carries the file as it is in the repository.
        Assert.Equal(File.ReadAllText(Repo.File("deploy/k8s/gateway.toml")), toml);
        return new Rendered(configMap, byKind["Service"], byKind["Deployment"], toml);
    }

    [Fact]
    public void Probes_ask_the_masters_metrics_bind_for_readiness_and_liveness()
    {
        var m = Manifests.Value;
        var (host, port) = HostAndPort(m.Config.Get(Settings.MetricsBind));
        // The kubelet probes the pod's own address: a loopback-only metrics_bind would fail every probe.
        Assert.DoesNotContain(host, new[] { "127.0.0.1", "localhost", "[::1]" });

        var c = m.Container;
        foreach (var (probe, path) in new[] { ("readinessProbe", "/ready"), ("livenessProbe", "/live"), ("startupProbe", "/ready") })
        {
            Assert.Equal(path, Text(c, probe, "httpGet", "path"));
            Assert.Equal(port, ContainerPort(c, Text(c, probe, "httpGet", "port")));
        }
        // The application's port is another one, and the Service sends traffic there.
        int appPort = HostAndPort(Assert.Single(m.Config.Get(Settings.Bind))).Port;
        Assert.NotEqual(port, appPort);
        var servicePorts = Seq(m.Service, "spec", "ports").Cast<YamlMappingNode>().ToList();
        Assert.Contains(servicePorts, p => ContainerPort(c, Text(p, "targetPort")) == appPort);
        Assert.Equal(Text(m.Deployment, "spec", "selector", "matchLabels", "app.kubernetes.io/name"),
            Text(m.Service, "spec", "selector", "app.kubernetes.io/name"));
    }

    [Fact]
    public void The_grace_period_outlasts_preStop_and_graceful_timeout()
    {
        var m = Manifests.Value;
        int grace = int.Parse(Text(m.PodSpec, "terminationGracePeriodSeconds"));
        int graceful = m.Config.Get(Settings.GracefulTimeout);
        var preStop = Map(m.Container, "lifecycle", "preStop");
        // Either form: exec ["sleep", "N"], or Kubernetes 1.30's sleep action.
        int sleep;
        if (preStop.Children.ContainsKey("sleep")) sleep = int.Parse(Text(preStop, "sleep", "seconds"));
        else
        {
            var command = Seq(preStop, "exec", "command").Select(n => n.ToString()).ToList();
            Assert.Equal("sleep", command[0]);
            sleep = int.Parse(Assert.Single(command.Skip(1)));
        }
        Assert.True(sleep >= 5, $"a preStop sleep of {sleep} s is too short for endpoints to be updated");
        Assert.True(grace > sleep + graceful,
            $"terminationGracePeriodSeconds={grace} must exceed the preStop sleep ({sleep} s) plus graceful_timeout ({graceful} s)");
        Assert.Equal("RollingUpdate", Text(m.Deployment, "spec", "strategy", "type"));
        Assert.Equal("0", Text(m.Deployment, "spec", "strategy", "rollingUpdate", "maxUnavailable"));
    }

    [Fact]
    public void The_pod_runs_as_non_root_on_a_read_only_root_with_its_writable_paths_on_volumes()
    {
        var m = Manifests.Value;
        var pod = Map(m.PodSpec, "securityContext");
        Assert.Equal("true", Text(pod, "runAsNonRoot"));
        Assert.NotEqual("0", Text(pod, "runAsUser"));
        // The image's user (deploy/Containerfile: the runtime-deps image's `app`, uid 1654).
        Assert.Equal("1654", Text(pod, "runAsUser"));
        Assert.Contains("USER $APP_UID", File.ReadAllText(Repo.File("deploy/Containerfile")));

        var c = m.Container;
        Assert.Equal("false", Text(c, "securityContext", "allowPrivilegeEscalation"));
        Assert.Equal("true", Text(c, "securityContext", "readOnlyRootFilesystem"));
        Assert.Equal(["ALL"], Seq(c, "securityContext", "capabilities", "drop").Select(n => n.ToString()));

        // With a read-only root, what Prefork writes must sit on an emptyDir.
        var mounts = Seq(c, "volumeMounts").Cast<YamlMappingNode>().ToDictionary(v => Text(v, "name"), v => Text(v, "mountPath"));
        var volumes = Seq(m.PodSpec, "volumes").Cast<YamlMappingNode>().ToDictionary(v => Text(v, "name"));
        var writable = mounts.Where(mp => volumes[mp.Key].Children.ContainsKey("emptyDir")).Select(mp => mp.Value).ToList();
        foreach (var path in new[] { m.Config.Get(Settings.ControlSocket), m.Config.Get(Settings.WorkerTmpDir) })
            Assert.True(writable.Any(w => path == w || path.StartsWith(w + "/")), $"{path} is not on a writable volume ({string.Join(", ", writable)})");

        // The config: the generated ConfigMap (hashed name) mounted where the image's ENTRYPOINT reads it.
        var config = volumes.Values.Single(v => v.Children.ContainsKey("configMap"));
        Assert.Equal(Text(m.ConfigMap, "metadata", "name"), Text(config, "configMap", "name"));
        Assert.Matches(@"^prefork-config-[a-z0-9]+$", Text(config, "configMap", "name"));
        var entrypoint = Regex.Match(File.ReadAllText(Repo.File("deploy/Containerfile")), @"^ENTRYPOINT \[.*""-c"", ""([^""]+)""\]$", RegexOptions.Multiline);
        Assert.True(entrypoint.Success, "deploy/Containerfile has no ENTRYPOINT [..., \"-c\", \"FILE\"]");
        Assert.Equal(entrypoint.Groups[1].Value, mounts[Text(config, "name")] + "/gateway.toml");
    }

    [Fact]
    public void Resources_leave_room_for_every_worker_at_its_memory_bound()
    {
        var m = Manifests.Value;
        var resources = Map(m.Container, "resources");
        long request = MiB(Text(resources, "requests", "memory")), limit = MiB(Text(resources, "limits", "memory"));
        Assert.True(request <= limit, $"memory request {request} MiB above the limit {limit} MiB");
        Assert.False(string.IsNullOrEmpty(Text(resources, "requests", "cpu")));
        // max_worker_memory recycles a worker before the pod's limit is reached; ~64 MiB for the master (measured 51-54).
        long perWorker = m.Config.Get(Settings.MaxWorkerMemoryMiB);
        int workers = m.Config.Get(Settings.Workers);
        Assert.True(perWorker > 0, "set max_worker_memory, so a growing worker is recycled rather than OOM-killed");
        Assert.True(64 + workers * perWorker <= limit, $"{workers} workers x max_worker_memory {perWorker} MiB + the master do not fit in {limit} MiB");
    }

    [Fact]
    public void The_ConfigMaps_gateway_toml_passes_prefork_check_config()
    {
        var path = Path.Combine(Path.GetTempPath(), $"prefork-k8s-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, Manifests.Value.GatewayToml);
        try
        {
            var (code, output) = PreforkServer.RunToExit("--check-config", "-c", path);
            Assert.True(code == 0, output);
            Assert.Contains("configuration OK", output);
        }
        finally { File.Delete(path); }
    }

    private static YamlNode At(YamlNode node, params string[] keys)
    {
        foreach (var key in keys)
        {
            var map = Assert.IsType<YamlMappingNode>(node);
            Assert.True(map.Children.TryGetValue(new YamlScalarNode(key), out var next), $"no `{key}` in the rendered YAML (path {string.Join('.', keys)})");
            node = next;
        }
        return node;
    }

    private static string Text(YamlNode node, params string[] keys) => Assert.IsType<YamlScalarNode>(At(node, keys)).Value!;
    private static YamlMappingNode Map(YamlNode node, params string[] keys) => Assert.IsType<YamlMappingNode>(At(node, keys));
    private static YamlSequenceNode Seq(YamlNode node, params string[] keys) => Assert.IsType<YamlSequenceNode>(At(node, keys));

    /// <summary>A probe's or Service's port, by number or by the name of one of the container's ports.</summary>
    private static int ContainerPort(YamlMappingNode container, string port) => int.TryParse(port, out int number) ? number
        : int.Parse(Text(Seq(container, "ports").Cast<YamlMappingNode>().Single(p => Text(p, "name") == port), "containerPort"));

    private static (string Host, int Port) HostAndPort(string address)
    {
        int colon = address.LastIndexOf(':');
        return (address[..colon], int.Parse(address[(colon + 1)..]));
    }

    private static long MiB(string quantity) => quantity switch
    {
        _ when quantity.EndsWith("Gi") => long.Parse(quantity[..^2]) * 1024,
        _ when quantity.EndsWith("Mi") => long.Parse(quantity[..^2]),
        _ => throw new FormatException($"memory quantity {quantity}: write it in Mi or Gi"),
    };
}
