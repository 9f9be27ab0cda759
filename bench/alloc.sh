#!/usr/bin/env bash
# Allocation per request: one worker of each class under wrk, then TERM; each worker logs, as it
# exits, the bytes it allocated per request and its gen0 collections. A steady keep-alive client
# should cost 0 bytes per request; each class runs without and with an access log (to a file), and
# over TLS (keep-alive: the handshake is paid once per connection, the rest is per request).
#   bench/alloc.sh [SECONDS] [CLASSES]        e.g. bench/alloc.sh 5 "sync threads epoll"
# Writes bench/results/alloc-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, servers stopped on exit, need, build_prefork, wait_for
seconds=${1:-5}
classes=${2:-"sync threads epoll"}
work=bench/.work/alloc
mkdir -p "$work" bench/results

need wrk
need openssl
build_prefork
# A throwaway self-signed certificate for the TLS runs.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$work/server.key" -out "$work/server.pem" 2>/dev/null

rows=()
port=18450
for run in $(for c in $classes; do echo "$c:off $c:file $c:tls"; done); do
  class=${run%:*} accesslog=${run#*:}
  port=$((port + 1))
  log="$work/prefork-$class-$accesslog.log"
  [ "$accesslog" = file ] && logfile="$work/access-$class.log" || logfile=""
  [ "$accesslog" = tls ] && tls=(--certfile "$work/server.pem" --keyfile "$work/server.key") scheme=https || tls=() scheme=http
  rm -f "$work/access-$class.log"
  $prefork -c gateway.toml -b "127.0.0.1:$port" -w 1 -k "$class" --accesslog "$logfile" "${tls[@]}" --log-level info > "$log" 2>&1 &
  pid=$!; wait_for $port $scheme
  rps=$(wrk -t2 -c50 -d"${seconds}s" "$scheme://127.0.0.1:$port/" | grep -oP 'Requests/sec:\s*\K[\d.]+')
  kill -TERM $pid; wait $pid || true
  line=$(grep -oP 'Exiting after \K.*' "$log" | tail -1)   # "N requests (B bytes allocated per request, G gen0 GCs)"
  [ -n "$line" ] || { echo "no exit line from the $class worker; see $log" >&2; exit 1; }
  [[ $line =~ ^([0-9]+)\ requests\ \(([0-9]+)\ bytes.*,\ ([0-9]+)\ gen0 ]]
  requests=${BASH_REMATCH[1]} bytes=${BASH_REMATCH[2]} gcs=${BASH_REMATCH[3]}
  rows+=("| $class | $accesslog | $requests | $rps | $bytes | $gcs |")
done

out="bench/results/alloc-$(date +%F)-$(hostname).md"
{
  echo "# Allocation per request ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname))"
  echo
  echo "One worker, wrk -t2 -c50 -d${seconds}s keep-alive against hello world, then TERM; the worker's own exit line."
  echo "Command: \`bench/alloc.sh $seconds \"$classes\"\`."
  echo
  echo "| worker class | access log / TLS | requests | req/s | bytes allocated per request | gen0 GCs |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
