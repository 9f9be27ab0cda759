#!/usr/bin/env bash
# Allocation per request of an asynchronous gateway app (IAsyncGatewayApplication), beside the
# synchronous sample app: one worker of each class under wrk, then TERM; the worker's exit line
# says the bytes it allocated per request. Routes of the sample app's AsyncSampleApplication:
# /async/hello returns a completed ValueTask, /async/yield awaits Task.Yield(), /async/lookup awaits
# a 1 ms Task.Delay (a timer) before choosing its status.
#   bench/alloc-async.sh [SECONDS] [CLASSES]        e.g. bench/alloc-async.sh 5 "threads epoll"
# Writes bench/results/alloc-async-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, servers stopped on exit, need, build_prefork, wait_for
seconds=${1:-5}
classes=${2:-"sync threads epoll"}
work=bench/.work/alloc-async
mkdir -p "$work" bench/results
need wrk
build_prefork

sync_app=Prefork.SampleApp:Prefork.SampleApp.SampleApplication
async_app=Prefork.SampleApp:Prefork.SampleApp.AsyncSampleApplication
rows=()
port=18480
for class in $classes; do
  for run in "$sync_app /" "$async_app /async/hello" "$async_app /async/yield" "$async_app /async/lookup?id=5&ms=1"; do
    app=${run% *} path=${run#* }
    port=$((port + 1))
    log="$work/prefork-$class-$port.log"
    $prefork -c gateway.toml -b "127.0.0.1:$port" -w 1 -k "$class" -a "$app" --accesslog "" --log-level info > "$log" 2>&1 &
    pid=$!; wait_for $port
    rps=$(wrk -t2 -c50 -d"${seconds}s" "http://127.0.0.1:$port$path" | grep -oP 'Requests/sec:\s*\K[\d.]+')
    kill -TERM $pid; wait $pid || true
    line=$(grep -oP 'Exiting after \K.*' "$log" | tail -1)   # "N requests (B bytes allocated per request, G gen0 GCs)"
    [ -n "$line" ] || { echo "no exit line from the $class worker; see $log" >&2; exit 1; }
    [[ $line =~ ^([0-9]+)\ requests\ \(([0-9]+)\ bytes.*,\ ([0-9]+)\ gen0 ]]
    rows+=("| $class | ${app##*.} | \`$path\` | ${BASH_REMATCH[1]} | $rps | ${BASH_REMATCH[2]} | ${BASH_REMATCH[3]} |")
  done
done

out="bench/results/alloc-async-$(date +%F)-$(hostname).md"
{
  echo "# Allocation per request, synchronous and asynchronous apps ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "One worker, no access log, wrk -t2 -c50 -d${seconds}s keep-alive, then TERM; the worker's own exit line"
  echo "(its bytes include start-up, spread over the requests). Command: \`bench/alloc-async.sh $seconds \"$classes\"\`."
  echo
  echo "| worker class | app | path | requests | req/s | bytes allocated per request | gen0 GCs |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
