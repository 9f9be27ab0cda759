#!/usr/bin/env bash
# Memory per idle keep-alive connection: one epoll worker; a client opens N connections, sends one
# request on each and keeps them all open; the worker's resident memory (VmRSS) is read before
# and after. The first 50 connections warm the code paths up and are not counted.
#   bench/idle.sh [N]                        e.g. bench/idle.sh 5000
# Writes bench/results/idle-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, servers stopped on exit, need, build_prefork, wait_for
n=${1:-5000}
work=bench/.work/idle
mkdir -p "$work" bench/results
build_prefork
ulimit -n $((n + 1000))

port=18470
$prefork -c gateway.toml -b "127.0.0.1:$port" -w 1 -k epoll --worker-connections $((n + 100)) --keepalive 600 \
  --accesslog "" --log-level warning > "$work/prefork.log" 2>&1 &
master=$!; wait_for $port
worker=$(pgrep -P $master)

line=$(python3 - "$port" "$worker" "$n" <<'PY'
import socket, sys, time
port, worker, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss_kib():
    return int(next(l for l in open(f"/proc/{worker}/status") if l.startswith("VmRSS")).split()[1])
def open_one():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(4096)
    return s
kept = [open_one() for _ in range(50)]
time.sleep(1); before = rss_kib()
kept += [open_one() for _ in range(n)]
time.sleep(1); after = rss_kib()
print(f"| {n} | {before} | {after} | {(after - before) * 1024 / n:.0f} |")
PY
)

out="bench/results/idle-$(date +%F)-$(hostname).md"
{
  echo "# Memory per idle keep-alive connection ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname))"
  echo
  echo "One epoll worker; N connections each sent one request and stay open (keepalive 600 s)."
  echo "Worker VmRSS before and after, in KiB. Command: \`bench/idle.sh $n\`."
  echo
  echo "| connections | RSS before | RSS after | bytes per connection |"
  echo "|---|---|---|---|"
  echo "$line"
} | tee "$out"
