#!/usr/bin/env bash
# Allocation per request: one worker of each class under wrk, then TERM; each worker logs, as it
# exits, the bytes it allocated per request and its gen0 collections. A steady keep-alive client
# should cost 0 bytes per request; each class runs without and with an access log (to a file), and
# over TLS (keep-alive: the handshake is paid once per connection, the rest is per request). A
# worker's figure spreads its boot over its requests, and TLS's boot (certificate, OpenSSL, the
# first handshakes) is larger: so TLS also runs for twice as long, and the extra bytes over the
# extra requests give the cost of one more request (the same 50 connections, the same boot).
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
marginal=()
for run in $(for c in $classes; do echo "$c:off $c:file $c:tls $c:tls2x"; done); do
  class=${run%:*} accesslog=${run#*:}
  duration=$seconds
  [ "$accesslog" = tls2x ] && duration=$((seconds * 2))
  port=$((port + 1))
  log="$work/prefork-$class-$accesslog.log"
  [ "$accesslog" = file ] && logfile="$work/access-$class.log" || logfile=""
  [[ "$accesslog" = tls* ]] && tls=(--certfile "$work/server.pem" --keyfile "$work/server.key") scheme=https || tls=() scheme=http
  rm -f "$work/access-$class.log"
  $prefork -c gateway.toml -b "127.0.0.1:$port" -w 1 -k "$class" --accesslog "$logfile" "${tls[@]}" --log-level info > "$log" 2>&1 &
  pid=$!; wait_for $port $scheme
  rps=$(wrk -t2 -c50 -d"${duration}s" "$scheme://127.0.0.1:$port/" | grep -oP 'Requests/sec:\s*\K[\d.]+')
  kill -TERM $pid; wait $pid || true
  line=$(grep -oP 'Exiting after \K.*' "$log" | tail -1)   # "N requests (B bytes allocated per request, G gen0 GCs)"
  [ -n "$line" ] || { echo "no exit line from the $class worker; see $log" >&2; exit 1; }
  [[ $line =~ ^([0-9]+)\ requests\ \(([0-9]+)\ bytes.*,\ ([0-9]+)\ gen0 ]]
  requests=${BASH_REMATCH[1]} bytes=${BASH_REMATCH[2]} gcs=${BASH_REMATCH[3]}
  if [ "$accesslog" = tls2x ]; then
    # bytes per request are rounded down: the totals are known to within one byte per request.
    marginal+=("$(python3 -c "r1,b1,r2,b2=$tls_requests,$tls_bytes,$requests,$bytes
m=(r2*b2-r1*b1)/(r2-r1); e=(r1+r2)/(r2-r1)
print(f'| $class | {r1} in ${seconds} s, {r2} in ${duration} s | {m:.1f} (± {e:.1f}) |')")")
  else
    rows+=("| $class | $accesslog | $requests | $rps | $bytes | $gcs |")
  fi
  [ "$accesslog" = tls ] && tls_requests=$requests tls_bytes=$bytes
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
  echo
  echo "TLS, the cost of one more keep-alive request: a second TLS worker run for twice as long (same 50 connections),"
  echo "(bytes of the longer run - bytes of the shorter) / (its extra requests)."
  echo
  echo "| worker class | requests | bytes allocated per extra request |"
  echo "|---|---|---|"
  printf '%s\n' "${marginal[@]}"
  echo
  echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$out"
