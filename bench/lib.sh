# Sourced by bench/alloc.sh, bench/idle.sh and bench/reload.sh (after their `set -euo pipefail`): runs from the
# repository's root, stops on exit, by pid, every server it started that still runs (its
# background jobs: one it stopped and waited for is no longer a job, so that pid, maybe reused
# since, is not signalled), and gives the helpers both need.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cleanup() {
  local running
  running=$(jobs -p)
  [ -n "$running" ] || return 0
  kill -TERM $running 2>/dev/null || true
  sleep 1
  running=$(jobs -p)
  [ -z "$running" ] || kill -KILL $running 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT   # end the script (and so run cleanup), do not carry on after it
trap 'exit 143' TERM

# need COMMAND...: installs Debian's package of the same name for each command that is missing.
need() {
  local missing=() cmd
  for cmd; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
  [ ${#missing[@]} -eq 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }
}

# The Release build of src/Prefork.Cli, built in place.
prefork=src/Prefork.Cli/bin/Release/net10.0/prefork
build_prefork() { dotnet build src/Prefork.Cli -c Release -v q -nologo >/dev/null; }

wait_for() { for _ in $(seq 100); do curl -skf "${2:-http}://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }
