#!/usr/bin/env bash
# The control socket and the metrics listener under load: wrk keeps 2 threads workers busy while
# (1) `prefork ctl status` runs N times (the whole client: process start, config, request, table),
# (2) one JSON status request goes N times over the socket itself (what the master adds), and
# (3) GET /metrics is scraped N times. Reports median and max of each, with wrk's throughput.
#   bench/control.sh [N]                     e.g. bench/control.sh 20
# Writes bench/results/control-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, servers stopped on exit, need, build_prefork, wait_for
n=${1:-20}
need wrk curl python3
work=bench/.work/control
rm -rf "$work"; mkdir -p "$work" bench/results
build_prefork

port=18480 metrics=18481
$prefork -c gateway.toml -b "127.0.0.1:$port" -w 2 -k threads --threads 4 --accesslog "" --log-level warning \
  --control-socket "$PWD/$work/prefork.ctl" --metrics-bind "127.0.0.1:$metrics" > "$work/prefork.log" 2>&1 &
wait_for $port
wrk -t2 -c32 -d$((n / 2 + 15))s "http://127.0.0.1:$port/" > "$work/wrk.txt" &
wrk_pid=$!
sleep 2

ms() { python3 -c 'import sys; v=sorted(float(x) for x in sys.stdin.read().split()); print(f"median {v[len(v)//2]:.1f} ms, max {v[-1]:.1f} ms")'; }
ctl=$(for _ in $(seq "$n"); do
  s=$(date +%s%N); $prefork ctl --socket "$work/prefork.ctl" status >/dev/null; e=$(date +%s%N); echo "$(( (e - s) / 1000 ))e-3"
done | ms)
socket=$(python3 - "$work/prefork.ctl" "$n" <<'PY' | ms
import socket, sys, time
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'{"command":"status"}\n')
    data = b""
    while not data.endswith(b"\n"): data += s.recv(65536)
    s.close()
    print((time.perf_counter() - t) * 1000)
PY
)
scrape=$(for _ in $(seq "$n"); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$metrics/metrics" | python3 -c 'print(float(input())*1000)'; done | ms)
wait $wrk_pid
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")

out="bench/results/control-$(date +%Y%m%d)-$(hostname).md"
{
  echo "# Control socket and metrics under load ($(date -u +%F), $(nproc) cores, wrk -t2 -c32 at $rps req/s, 2 threads workers)"
  echo
  echo "| what | $n times |"
  echo "|---|---|"
  echo "| \`prefork ctl status\` (whole client process) | $ctl |"
  echo "| one status request on the socket | $socket |"
  echo "| GET /metrics | $scrape |"
} | tee "$out"
