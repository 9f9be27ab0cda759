#!/usr/bin/env bash
# An ASP.NET Core app (src/Prefork.SampleWeb, with builder.WebHost.UsePrefork()) under Kestrel alone
# and under Prefork as command workers, side by side:
#   1. requests/s, wrk -t2 -c64 keep-alive on GET /, rounds alternating between the servers
#      (median, min-max; ratio to Kestrel alone, same two cores);
#   2. failed requests during a restart under load: Kestrel alone restarted as people do without a
#      supervisor (TERM, then start it again: what `systemctl restart` does), against Prefork's HUP.
#   bench/aspnetcore.sh [ROUNDS] [SECONDS]      e.g. bench/aspnetcore.sh 3 5
# Writes bench/results/aspnetcore-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, servers stopped on exit, need, build_prefork, wait_for
rounds=${1:-3}
seconds=${2:-5}
work=bench/.work/aspnetcore
mkdir -p "$work" bench/results

need wrk curl
build_prefork
dotnet build src/Prefork.SampleWeb -c Release -v q -nologo >/dev/null
web=src/Prefork.SampleWeb/bin/Release/net10.0/Prefork.SampleWeb.dll
export ASPNETCORE_ENVIRONMENT=Production Logging__LogLevel__Default=Warning

# requests PORT: wrk's completed requests/s for $seconds, keep-alive, 64 connections.
requests() {
  wrk -t2 -c64 -d"${seconds}s" --timeout 5s "http://127.0.0.1:$1/" > "$work/last.wrk"
  grep -oP 'Requests/sec:\s+\K[\d.]+' "$work/last.wrk"
}
# failures FILE: wrk's socket errors plus non-2xx responses.
failures() {
  local errors non2xx
  errors=$(grep -oP 'Socket errors: connect \K.*' "$1" | tr -cd '0-9 ,' | tr ',' '\n' | awk '{s+=$1} END {print s+0}')
  non2xx=$(grep -oP 'Non-2xx or 3xx responses: \K\d+' "$1" || echo 0)
  echo $((errors + non2xx))
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { tr ' ' '\n' | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f–%.0f", lo, hi}'; }

kestrel_port=18471 p1_port=18472 p2_port=18473
start_kestrel() { dotnet "$web" --urls "http://127.0.0.1:$kestrel_port" > "$work/kestrel.log" 2>&1 & kestrel=$!; wait_for $kestrel_port; }
start_kestrel
$prefork -w 1 -b "127.0.0.1:$p1_port" --accesslog "" --log-level warning -- dotnet "$PWD/$web" > "$work/prefork1.log" 2>&1 & prefork1=$!
$prefork -w 2 -b "127.0.0.1:$p2_port" --accesslog "" --log-level warning -- dotnet "$PWD/$web" > "$work/prefork2.log" 2>&1 & prefork2=$!
wait_for $p1_port; wait_for $p2_port
for port in $kestrel_port $p1_port $p2_port; do wrk -t2 -c64 -d2s "http://127.0.0.1:$port/" >/dev/null; done # JIT warm-up

k=() p1=() p2=()
for round in $(seq "$rounds"); do
  k+=("$(requests $kestrel_port)"); p1+=("$(requests $p1_port)"); p2+=("$(requests $p2_port)")
  echo "round $round: kestrel ${k[-1]}  prefork x1 ${p1[-1]}  prefork x2 ${p2[-1]}" >&2
done
km=$(echo "${k[*]}" | median)
row() { local m; m=$(echo "$2" | median); printf '| %s | %.0f | %s | %.2f |\n' "$1" "$m" "$(echo "$2" | range)" "$(echo "$m / $km" | bc -l)"; }
throughput=("$(row "Kestrel alone (one process)" "${k[*]}")" "$(row "Prefork, 1 worker" "${p1[*]}")" "$(row "Prefork, 2 workers" "${p2[*]}")")
stop $prefork1

# Restart under load: 20 connections for 12 s; the restart comes at 3 s.
restart_seconds=12
wrk -t2 -c20 -d${restart_seconds}s --timeout 10s "http://127.0.0.1:$kestrel_port/" > "$work/kestrel-restart.wrk" &
wrk_pid=$!
sleep 3
stop $kestrel
start_kestrel
wait $wrk_pid
wrk -t2 -c20 -d${restart_seconds}s --timeout 10s "http://127.0.0.1:$p2_port/" > "$work/prefork-restart.wrk" &
wrk_pid=$!
sleep 3
kill -HUP $prefork2
wait $wrk_pid
restart=(
  "| Kestrel alone: TERM, start again | $(grep -oP '\d+(?= requests in)' "$work/kestrel-restart.wrk") | $(failures "$work/kestrel-restart.wrk") |"
  "| Prefork ×2: HUP (new workers, old ones retired once the new are ready) | $(grep -oP '\d+(?= requests in)' "$work/prefork-restart.wrk") | $(failures "$work/prefork-restart.wrk") |"
)

out="bench/results/aspnetcore-$(date +%F)-$(hostname).md"
{
  echo "# ASP.NET Core: Kestrel alone and under Prefork ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname))"
  echo
  echo "The same app (src/Prefork.SampleWeb, GET / → "Hello from ASP.NET Core"), .NET $(dotnet --version), Release build."
  echo "Command: \`bench/aspnetcore.sh $rounds $seconds\`."
  echo
  echo "## Requests/s (wrk -t2 -c64 -d${seconds}s, keep-alive; $rounds rounds alternating; wrk on the same cores)"
  echo
  echo "| server | median req/s | min–max | × Kestrel alone |"
  echo "|---|---|---|---|"
  printf '%s\n' "${throughput[@]}"
  echo
  echo "## A restart under load (wrk -t2 -c20 -d${restart_seconds}s; the restart at 3 s)"
  echo
  echo "| how | requests | failed (socket errors + non-2xx) |"
  echo "|---|---|---|"
  printf '%s\n' "${restart[@]}"
} | tee "$out"
