using Mono.Unix.Native;

namespace Prefork.Tests.Support;

/// <summary>A fact that only root can check: reported as skipped, not as passed, when the tests run as another user.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (Syscall.getuid() != 0) Skip = "needs root (CI runs as root)";
    }
}
