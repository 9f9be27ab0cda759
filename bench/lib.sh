# Sourced by bench/alloc.sh and bench/reload.sh (after their `set -euo pipefail`): runs from the
# repository's root, stops every pid in `pids` on exit, and gives the helpers both need.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 1; for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

# need COMMAND...: installs Debian's package of the same name for each command that is missing.
need() {
  local missing=() cmd
  for cmd; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
  [ ${#missing[@]} -eq 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }
}

# The Release build of src/Prefork.Cli, built in place.
prefork=src/Prefork.Cli/bin/Release/net10.0/prefork
build_prefork() { dotnet build src/Prefork.Cli -c Release -v q -nologo >/dev/null; }

wait_for() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }
