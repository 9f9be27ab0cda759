#!/usr/bin/env bash
# bench/techempower/profile.sh SERVER TEST [SECONDS]
#
# Where one server's CPU per request goes, for one TechEmpower test: starts PostgreSQL
# (bench/techempower/pg.sh) and SERVER (prefork-epoll, aspnetcore-prefork or kestrel: the builds
# bench/techempower.sh left in bench/.work/techempower, with its runtime knobs), warms up, then
# runs wrk (64 connections, or TE_PROFILE_CONNS) for SECONDS (default 10) twice: once under
# `perf stat` (CPU time, context switches, syscalls and page faults of the server's processes per
# request, and the machine's idle share) and once under `perf record -g` (DOTNET_PerfMapEnabled=1,
# so JIT-compiled frames have names). Everything is stopped by pid.
#
#   TE_PROFILE_ENV  extra environment for the server (e.g. "DOTNET_gcServer=1")
#   TE_PROFILE_DIR  where perf.data, the report and the logs go (default bench/.work/techempower/profile-SERVER-TEST)
#   TE_MUX_POOL     connections per worker (default 2), as in bench/techempower.sh
#   TE_PROFILE_STAT_ONLY=1  only the perf stat run (CPU, switches, syscalls per request)
#   TE_PROFILE_WORKERS      prefork-epoll's workers (default 2)
#   TE_PROFILE_POOL=N       no multiplexing: a pool of N connections per process
#   TE_PROFILE_PREFORK      another published Prefork (a folder) to run instead of bench/.work's
#   TE_PROFILE_PIN=1        pin each worker process (all its threads) to one core, round-robin
#   TE_PROFILE_WARMUP       seconds of load before the measured runs (default 5)
#   TE_PROFILE_CONNS        wrk connections (default 64)
# Needs perf (linux-perf) and wrk; run as root or with perf_event_paranoid ≤ 1.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$BENCH/.work/techempower
SERVER=${1:?usage: profile.sh SERVER TEST [SECONDS]}
TEST=${2:?usage: profile.sh SERVER TEST [SECONDS]}
SECONDS_RUN=${3:-10}
OUT=${TE_PROFILE_DIR:-$WORK/profile-$SERVER-$TEST}
MUX_POOL=${TE_MUX_POOL:-2}
CONNS=${TE_PROFILE_CONNS:-64}
mkdir -p "$OUT"

source "$BENCH/techempower/pg.sh"
SERVER_PID=
cleanup() {
  trap - EXIT
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  pg_stop
}
trap cleanup EXIT

pg_start 100
db="$(pg_npgsql);Multiplexing=true;Maximum Pool Size=$MUX_POOL"
[ -n "${TE_PROFILE_POOL:-}" ] && db="$(pg_npgsql);Maximum Pool Size=$TE_PROFILE_POOL" # no multiplexing
port=18690
# W^X off: with it, JIT-compiled code runs from a double mapping that perf cannot name.
knobs="DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 ${TE_PROFILE_ENV:-}"
prefork="${TE_PROFILE_PREFORK:-$WORK/prefork}/prefork --log-level warning --accesslog '' --control-socket '' --keepalive 5 --backlog 2048 -b 127.0.0.1:$port"
case $SERVER in
  prefork-epoll) cmd="$prefork -k epoll -w ${TE_PROFILE_WORKERS:-2} -a $WORK/gateway/TechEmpowerGateway.dll:TechEmpowerGateway.TechEmpowerAsyncApp" ;;
  aspnetcore-prefork) cmd="$prefork -w 2 -- $WORK/kestrel/TechEmpowerKestrel" ;;
  kestrel) cmd="$WORK/kestrel/TechEmpowerKestrel --urls http://127.0.0.1:$port" db="$(pg_npgsql);Multiplexing=true;Maximum Pool Size=$((2 * MUX_POOL))" ;;
  *) echo "unknown server $SERVER" >&2; exit 2 ;;
esac
(cd "$WORK" && eval "exec env ASPNETCORE_ENVIRONMENT=Production TECHEMPOWER_DB='$db' $knobs setsid $cmd") >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/plaintext" && break; sleep 0.1; done
# The processes that serve: the workers under a Prefork master, or Kestrel itself.
if [ "$SERVER" = kestrel ]; then pids=$SERVER_PID; else pids=$(pgrep -P "$SERVER_PID" | paste -sd,); fi
# TE_PROFILE_PIN=1: each worker (all its threads) on one core of its own, round-robin (an experiment).
if [ -n "${TE_PROFILE_PIN:-}" ]; then
  cpu=0
  for pid in ${pids//,/ }; do taskset -a -p -c $((cpu % $(nproc))) "$pid" >/dev/null; cpu=$((cpu + 1)); done
fi
url=http://127.0.0.1:$port/$TEST
wrk -t 2 -c "$CONNS" -d "${TE_PROFILE_WARMUP:-5}s" "$url" >/dev/null # warm-up: JIT, tiering, pools

cpu() { python3 "$BENCH/techempower/cpu.py" "$SERVER_PID" "$PG_PID"; }
idle() { awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; } # idle+iowait, all
before=$(cpu) idle_before=$(idle)
perf stat --per-thread -x, -e task-clock,context-switches,raw_syscalls:sys_enter,minor-faults -p "$pids" -o "$OUT/stat.txt" -- \
  wrk -t 2 -c "$CONNS" -d "${SECONDS_RUN}s" "$url" >"$OUT/wrk-stat.txt"
after=$(cpu) idle_after=$(idle)
requests=$(grep -oP '^\s*\K\d+(?= requests in)' "$OUT/wrk-stat.txt")
rps=$(grep -oP 'Requests/sec:\s+\K[\d.]+' "$OUT/wrk-stat.txt")
{
  echo "server $SERVER, test $TEST, $SECONDS_RUN s, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "requests $requests ($rps/s); CPU µs/request: $(echo "$before $after" | awk -v n="$requests" '{printf "server %.1f, PostgreSQL %.1f", ($3 - $1) * 1e6 / n, ($4 - $2) * 1e6 / n}')"
  # The share of the machine's CPU time nobody used: work waiting on work, not on CPU.
  echo "machine idle: $(echo "$idle_before $idle_after" | awk '{printf "%.1f %%", 100 * ($3 - $1) / ($4 - $2)}')"
  # Per kind of thread (the name without its tid): CPU µs, context switches, syscalls and page faults per request.
  python3 - "$OUT/stat.txt" "$requests" <<'PY'
import collections, re, sys
per = collections.defaultdict(lambda: collections.Counter())
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) < 4 or not f[1].replace(".", "").isdigit(): continue
    name = re.sub(r"-\d+$", "", f[0]).strip()
    event = f[3]
    per[name][event] += float(f[1])
n = int(sys.argv[2])
total = collections.Counter()
print(f"{'thread':<20} {'cpu µs':>8} {'switches':>9} {'syscalls':>9} {'faults':>7}   (per request)")
for name, c in sorted(per.items(), key=lambda kv: -kv[1]["task-clock"]):
    total.update(c)
    print(f"{name:<20} {c['task-clock'] * 1000 / n:8.1f} {c['context-switches'] / n:9.2f} {c['raw_syscalls:sys_enter'] / n:9.2f} {c['minor-faults'] / n:7.2f}")
print(f"{'all':<20} {total['task-clock'] * 1000 / n:8.1f} {total['context-switches'] / n:9.2f} {total['raw_syscalls:sys_enter'] / n:9.2f} {total['minor-faults'] / n:7.2f}")
PY
} | tee "$OUT/summary.txt"

[ -n "${TE_PROFILE_STAT_ONLY:-}" ] && exit 0 # the figures only: no perf record, no perf trace
perf record -e cpu-clock -F 2000 -g -p "$pids" -o "$OUT/perf.data" -- wrk -t 2 -c "$CONNS" -d "${SECONDS_RUN}s" "$url" >"$OUT/wrk-record.txt" 2>"$OUT/record.log"
perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^$' | head -150 >"$OUT/report.txt" || true
perf report -i "$OUT/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 >"$OUT/threads.txt" || true
# Which syscalls, on which threads (perf trace slows every syscall: counts only, not times).
perf trace -s -p "$pids" -o "$OUT/trace.txt" -- wrk -t 2 -c "$CONNS" -d "${SECONDS_RUN}s" "$url" >"$OUT/wrk-trace.txt" 2>&1 || true
python3 - "$OUT/trace.txt" "$(grep -oP '^\s*\K\d+(?= requests in)' "$OUT/wrk-trace.txt")" <<'PY' | tee "$OUT/syscalls.txt"
import collections, re, sys
calls = collections.defaultdict(collections.Counter)
thread = None
for line in open(sys.argv[1]):
    m = re.match(r"\s*(.+?) \((\d+)\), \d+ events", line)
    if m:
        thread = re.sub(r"-\d+$", "", m.group(1)).strip()
        continue
    f = line.split()
    if thread and len(f) >= 3 and f[1].isdigit() and re.match(r"^[a-z_0-9]+$", f[0]):
        calls[thread][f[0]] += int(f[1])
n = int(sys.argv[2])
print(f"syscalls per request by thread ({n} requests under perf trace)")
for thread, c in sorted(calls.items(), key=lambda kv: -sum(kv[1].values())):
    print(f"{thread:<18} {sum(c.values()) / n:6.2f}: " + ", ".join(f"{k} {v / n:.2f}" for k, v in c.most_common(8)))
PY
echo "perf data, report and per-thread split in $OUT"
