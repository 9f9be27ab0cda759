#!/usr/bin/env bash
# Reload under load: wrk keeps 20 connections busy while the master gets a HUP every second;
# counts requests and every failure wrk sees. Prefork and Gunicorn (Debian's package) side by side.
#   bench/reload.sh [SECONDS] [CLASSES]       e.g. bench/reload.sh 12 "sync threads epoll"
# Writes bench/results/reload-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, servers stopped on exit, need, build_prefork, wait_for
seconds=${1:-12}
classes=${2:-"sync threads epoll"}
work=bench/.work/reload
mkdir -p "$work" bench/results

need wrk gunicorn
build_prefork

# run NAME PORT PID: wrk for $seconds while HUPing PID every second; prints a table row.
run() {
  local name=$1 port=$2 pid=$3
  wrk -t2 -c20 -d"${seconds}s" --timeout 10s "http://127.0.0.1:$port/" > "$work/$name.wrk" &
  local wrk_pid=$!
  local hups=0
  sleep 1
  while kill -0 $wrk_pid 2>/dev/null && [ $hups -lt $((seconds - 2)) ]; do kill -HUP "$pid"; hups=$((hups + 1)); sleep 1; done
  wait $wrk_pid
  local requests errors non2xx
  requests=$(grep -oP '\d+(?= requests in)' "$work/$name.wrk")
  errors=$(grep -oP 'Socket errors: connect \K.*' "$work/$name.wrk" | tr -cd '0-9 ,' | tr ',' '\n' | awk '{s+=$1} END {print s+0}')
  non2xx=$(grep -oP 'Non-2xx or 3xx responses: \K\d+' "$work/$name.wrk" || echo 0)
  echo "| $name | $hups | $requests | $((errors + non2xx)) |"
}

rows=()
port=18400
for class in $classes; do
  port=$((port + 1))
  if ! $prefork --check-config -k "$class" >/dev/null 2>&1; then echo "skipping worker class $class (not available)" >&2; continue; fi
  $prefork -c gateway.toml -b "127.0.0.1:$port" -w 2 -k "$class" --accesslog "" --log-level warning > "$work/prefork-$class.log" 2>&1 &
  pid=$!; wait_for $port
  rows+=("$(run "prefork $class (2 workers)" $port $pid)")
done
for kind in "sync --workers 5" "gthread --workers 2 --threads 4"; do
  port=$((port + 1))
  set -- $kind
  (cd bench/apps && exec gunicorn --bind "127.0.0.1:$port" --worker-class "$@" --log-level warning wsgi_app:app) > "$work/gunicorn-$1.log" 2>&1 &
  pid=$!; wait_for $port
  rows+=("$(run "gunicorn $1 ($*)" $port $pid)")
done

out="bench/results/reload-$(date +%F)-$(hostname).md"
{
  echo "# Reload under load ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname))"
  echo
  echo "wrk -t2 -c20 -d${seconds}s against hello world while the master gets a HUP every second."
  echo "Command: \`bench/reload.sh $seconds \"$classes\"\`; Gunicorn $(gunicorn --version 2>&1 | grep -oP '[\d.]+' | head -1) from Debian."
  echo
  echo "| server | HUPs | requests | failed (socket errors + non-2xx) |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
