using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Prefork.Config;
using Prefork.Tests.Support;

namespace Prefork.Tests.Integration;

/// <summary>
/// The two NuGet packages, packed from this build into a local folder feed, and the `prefork`
/// tool installed from it into a tool path, the way a user installs it, offline: the only
/// package source is the local folder.
/// </summary>
public sealed class PackagesFixture : IDisposable
{
#if DEBUG
    public const string Configuration = "Debug";
#else
    public const string Configuration = "Release";
#endif
    public string Root { get; } = Directory.CreateTempSubdirectory("prefork-packages-").FullName;
    public string Feed => Path.Combine(Root, "feed");
    public string NuGetConfig => Path.Combine(Root, "nuget.config");
    public string ToolPath => Path.Combine(Root, "tools");
    public string Tool => Path.Combine(ToolPath, "prefork");
    public string Version { get; } = typeof(ServerInfo).Assembly.GetName().Version!.ToString(3);

    /// <summary>A fresh package cache, so nothing comes from (or goes to) the user's ~/.nuget/packages;
    /// a temp folder inside Root, since every dotnet command leaves two empty folders in its temp folder.</summary>
    public Dictionary<string, string> Environment => new()
    {
        ["NUGET_PACKAGES"] = Path.Combine(Root, "packages"), ["TMPDIR"] = Path.Combine(Root, "tmp"),
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1",
    };

    public PackagesFixture()
    {
        Directory.CreateDirectory(Path.Combine(Root, "tmp"));
        File.WriteAllText(NuGetConfig, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Feed}" />
              </packageSources>
            </configuration>
            """);
        foreach (var project in new[] { "src/Prefork.Cli", "src/Prefork.Gateway" })
        {
            var (code, output) = Repo.Run("dotnet", ["pack", project, "-c", Configuration, "--no-build", "-o", Feed], environment: Environment);
            if (code != 0) throw new InvalidOperationException($"dotnet pack {project} failed:\n{output}");
        }
    }

    private (int, string)? _install;

    /// <summary>`dotnet tool install --tool-path` from the local feed only (once); exit code and output.</summary>
    public (int ExitCode, string Output) Install()
    {
        lock (this)
            return _install ??= Repo.Run("dotnet", ["tool", "install", "--tool-path", ToolPath, "--configfile", NuGetConfig,
                "--add-source", Feed, "--ignore-failed-sources", "Prefork", "--version", Version], Root, environment: Environment);
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

[LongClass]
public sealed class PackagingTests(PackagesFixture packages) : IClassFixture<PackagesFixture>
{
    [Theory]
    [InlineData("Prefork", "src/Prefork.Cli/README.md")]
    [InlineData("Prefork.Gateway", "src/Prefork.Gateway/README.md")]
    public void Packages_carry_version_metadata_readme_and_licence(string id, string readme)
    {
        using var zip = ZipFile.OpenRead(Path.Combine(packages.Feed, $"{id}.{packages.Version}.nupkg"));
        var nuspec = XDocument.Load(zip.GetEntry($"{id}.nuspec")!.Open());
        var ns = nuspec.Root!.Name.Namespace;
        var meta = nuspec.Root.Element(ns + "metadata")!;
        string Field(string name) => meta.Element(ns + name)?.Value ?? "";
        Assert.Equal(id, Field("id"));
        Assert.Equal(packages.Version, Field("version"));
        Assert.Equal("MIT", Field("license"));
        Assert.Equal("README.md", Field("readme"));
        Assert.NotEqual("", Field("description"));
        Assert.NotEqual("", Field("authors"));
        Assert.NotEqual("", Field("projectUrl"));
        Assert.Contains("prefork", Field("tags"));
        Assert.NotNull(meta.Element(ns + "repository")?.Attribute("url"));
        using (var reader = new StreamReader(zip.GetEntry("README.md")!.Open()))
            Assert.Equal(File.ReadAllText(Repo.File(readme)), reader.ReadToEnd());
        using (var reader = new StreamReader(zip.GetEntry("LICENSE")!.Open()))
            Assert.Equal(File.ReadAllText(Repo.File("LICENSE")), reader.ReadToEnd());
        if (id == "Prefork.Gateway")
            Assert.Empty(meta.Descendants(ns + "dependency")); // what apps reference brings nothing else
        else
            Assert.Equal("DotnetTool", meta.Element(ns + "packageTypes")!.Element(ns + "packageType")!.Attribute("name")!.Value);
    }

    [Fact]
    public void The_tool_installs_from_the_local_feed_and_prints_its_version()
    {
        var (code, output) = packages.Install();
        Assert.True(code == 0, output);
        var (versionCode, version) = Repo.Run(packages.Tool, ["--version"]);
        Assert.Equal(0, versionCode);
        Assert.Equal($"prefork {packages.Version}", version.Trim());
    }

    /// <summary>The Gateway README's complete application, as written, built against the package and served by the installed tool.</summary>
    [Fact]
    public void The_gateway_readme_example_builds_against_the_package_and_is_served_by_the_installed_tool()
    {
        var readme = File.ReadAllText(Repo.File("src/Prefork.Gateway/README.md"));
        var blocks = Regex.Matches(readme, @"```(\w+)\n(.*?)```", RegexOptions.Singleline).Select(m => m.Groups[2].Value).ToList();
        var app = Path.Combine(packages.Root, "MyApp");
        Directory.CreateDirectory(app);
        File.WriteAllText(Path.Combine(app, "MyApp.csproj"), blocks.Single(b => b.StartsWith("<Project")).Replace("Version=\"0.1.0\"", $"Version=\"{packages.Version}\""));
        File.WriteAllText(Path.Combine(app, "Application.cs"), blocks.Single(b => b.StartsWith("// Application.cs")));
        int port = PreforkServer.FreePort();
        var toml = blocks.Single(b => b.StartsWith("# gateway.toml"));
        Assert.Contains("bind = [\"127.0.0.1:8000\"]", toml);
        File.WriteAllText(Path.Combine(app, "gateway.toml"), toml.Replace("127.0.0.1:8000", $"127.0.0.1:{port}"));

        var (build, buildOutput) = Repo.Run("dotnet", ["build", "-c", "Release", "--configfile", packages.NuGetConfig], app, TimeSpan.FromMinutes(3), packages.Environment);
        Assert.True(build == 0, buildOutput);
        var (install, installOutput) = packages.Install();
        Assert.True(install == 0, installOutput);

        using var service = ServiceProcess.StartExecutable(packages.Tool, Path.Combine(app, "gateway.toml"));
        service.WaitForLog("3 workers serving", TimeSpan.FromSeconds(60));
        Assert.StartsWith("Hello from worker ", RawHttp.Get(port, "/").BodyText);
        Assert.Equal("ok\n", RawHttp.Get(port, "/healthz").BodyText);
        Assert.Equal("HELLO", RawHttp.Send(port, "POST /upper HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").BodyText);
        Assert.Equal("1\n2\n", RawHttp.Get(port, "/count?2").BodyText);
        Assert.Equal(404, RawHttp.Get(port, "/nope").Status);
        service.WaitForLog("MyApp: worker 0 (pid", TimeSpan.FromSeconds(10)); // OnWorkerStart ran
    }
}
