#!/usr/bin/env bash
# Faults under load: what clients see, and how long the server takes to recover, when a worker is
# killed, a worker hangs, the master is killed, the access log's file system is full, or the
# workers run out of file descriptors. Prefork threads and epoll, Gunicorn gthread (Debian's) beside.
#   bench/faults.sh [--quick]       (≈4 min on 2 cores; --quick ≈2.5 min)
# Writes bench/results/faults-<date>-<host>.md. Loopback only; every process started is stopped by
# pid on exit (orphaned workers too), the tmpfs it mounts is unmounted. Needs root (mount, prlimit).
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, jobs stopped on exit, need, build_prefork

kills=10 load=10
faults=${FAULTS:-1 2 3 4 5}   # which of the five to run
want() { [[ " $faults " == *" $1 "* ]]; }
[ "${1:-}" = --quick ] && kills=4 load=6
work=$PWD/bench/.work/faults   # absolute: Gunicorn runs in bench/apps
full=$work/full              # the tmpfs of fault 4
mkdir -p "$work" "$full" bench/results
rm -f "$work"/*.log "$work"/*.wrk
CLK_TCK=$(getconf CLK_TCK)

# Processes a job's cleanup cannot see (a dead master's workers): stopped by pid on exit.
strays=()
faults_cleanup() {
  set +e # a failing step must not end the cleanup before the rest is stopped
  local pid job
  for job in $(jobs -p); do strays+=($(children "$job")); done # a master KILLed by cleanup leaves them
  cleanup
  for pid in "${strays[@]}"; do ! alive "$pid" || kill -KILL "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5; do mounted && ! umount "$full" 2>/dev/null || break; sleep 1; done
  ! mounted || umount -l "$full" # still busy: detach it, it goes when its last file closes
}
mounted() { grep -qs " $(realpath "$full") tmpfs " /proc/mounts; }
trap faults_cleanup EXIT

need wrk gunicorn curl
for cmd in prlimit systemd-socket-activate; do command -v $cmd >/dev/null || { echo "$cmd is missing (Debian: util-linux, systemd)" >&2; exit 1; }; done
build_prefork

now_ms() { echo $(($(date +%s%N) / 1000000)); }
alive() { local s; read -r s 2>/dev/null <"/proc/$1/stat" || return 1; s=${s##*) }; [ "${s%% *}" != Z ]; }
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | { grep . || true; } | while read -r p; do ! alive "$p" || echo "$p"; done; }
ticks() { local s f; read -r s <"/proc/$1/stat"; read -r -a f <<<"${s##*) }"; echo $((f[11] + f[12])); }

port=18600
# next_port: the next port nothing listens on (other helpers run servers too) into port and PORT.
next_port() { port=$((port + 1)); while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done; PORT=$port; }
# start NAME SERVER [EXTRA...]: starts SERVER (prefork-threads, prefork-epoll, gthread) on the next
# port with 2 workers and the extra flags, waits for its 2 workers and a 200; sets PID and PORT.
start() {
  local name=$1 server=$2
  shift 2
  next_port
  case $server in
    prefork-*) $prefork -c gateway.toml -b "127.0.0.1:$PORT" -w 2 -k "${server#prefork-}" --threads 4 \
                 --log-level warning --accesslog "" "$@" >"$work/$name.log" 2>&1 & ;;
    gthread) (cd bench/apps && exec gunicorn -b "127.0.0.1:$PORT" -k gthread -w 2 --threads 4 \
                 --log-level warning "$@" wsgi_app:app) >"$work/$name.log" 2>&1 & ;;
  esac
  PID=$!
  ready "$PID"
}
ready() { # master pid: its 2 workers up and a 200 on / (60 s at most: start-up on a loaded machine)
  for _ in $(seq 600); do
    [ "$(children "$1" | wc -l)" -ge 2 ] && curl -sf --max-time 2 "http://127.0.0.1:$PORT/" >/dev/null && return 0
    alive "$1" || { echo "server exited during start-up:" >&2; cat "$work/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "no answer on $PORT" >&2; exit 1
}
stop() { # master pid: TERM, then what is left is stopped by cleanup
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 150); do alive "$1" || break; sleep 0.1; done
  wait "$1" 2>/dev/null || true
}
load() { # seconds name: wrk in the background, 20 connections
  wrk -t2 -c20 -d"${1}s" --timeout 5s "http://127.0.0.1:$PORT/" >"$work/$2.wrk" 2>&1 &
  WRK=$!
}
# Waits for wrk, then its requests sent and failed (socket errors + non-2xx) into TALLY: "sent / failed".
# Not in $(…): a subshell cannot wait for our wrk.
tally() { # name
  wait "$WRK" || true
  local f=$work/$1.wrk requests errors non2xx
  requests=$(grep -oP '\d+(?= requests in)' "$f" || echo '?')
  errors=$({ grep -oP 'Socket errors: \K.*' "$f" || true; } | { grep -oP '\d+' || true; } | awk '{s += $1} END {print s + 0}')
  non2xx=$(grep -oP 'Non-2xx or 3xx responses: \K\d+' "$f" || echo 0)
  TALLY="$requests / $((errors + non2xx))"
}
seconds() { awk -v ms="$1" 'BEGIN {printf "%.2f", ms / 1000}'; }
elapsed() { seconds $(($(now_ms) - $1)); }
label() { case $1 in prefork-*) echo "Prefork ${1#prefork-} ×2";; gthread) echo "Gunicorn gthread ×2×4";; esac; }
servers=(prefork-threads prefork-epoll gthread)
rows1=() rows2=() rows3=() rows4=() rows5=()

# 1. kill -9 of a worker every second: recovery is the master running 2 workers again.
want 1 && for s in "${servers[@]}"; do
  start "kill9-$s" "$s"
  load $((kills + 2)) "kill9-$s"
  sleep 1
  worst=0
  for ((i = 0; i < kills; i++)); do
    victim=$(children "$PID" | sed -n 1p) # sed reads it all: head would end children with SIGPIPE
    [ -n "$victim" ] || { sleep 0.1; continue; }
    t0=$(now_ms)
    kill -KILL "$victim" 2>/dev/null || true
    for _ in $(seq 500); do
      ! alive "$victim" && [ "$(children "$PID" | wc -l)" -ge 2 ] && break
      sleep 0.01
    done
    dt=$(($(now_ms) - t0)); [ $dt -gt $worst ] && worst=$dt
    [ $dt -ge 1000 ] || sleep "$(seconds $((1000 - dt)))"
  done
  tally "kill9-$s"
  rows1+=("| $(label "$s") | $kills | $TALLY | $(seconds $worst) s |")
  stop "$PID"
done

# 2. SIGSTOP of a worker (timeout 2 s): recovery is the first answer from a worker that was not there.
want 2 && for s in "${servers[@]}"; do
  start "stop-$s" "$s" --timeout 2
  before=$(children "$PID" | tr '\n' ' ')
  load "$load" "stop-$s"
  sleep 1
  victim=$(children "$PID" | sed -n 1p) # sed reads it all: head would end children with SIGPIPE
  t0=$(now_ms)
  kill -STOP "$victim"
  strays+=("$victim")
  served=never
  for _ in $(seq 300); do
    pid=$(curl -s --max-time 1 "http://127.0.0.1:$PORT/pid" | grep -oP '"pid":\K\d+' || true)
    if [ -n "$pid" ] && [[ " $before " != *" $pid "* ]]; then served="$(elapsed "$t0") s"; break; fi
    sleep 0.05
  done
  killed=$(alive "$victim" && echo "no (still stopped)" || echo yes)
  tally "stop-$s"
  rows2+=("| $(label "$s") | $TALLY | $killed | $served |")
  ! alive "$victim" || kill -KILL "$victim"
  stop "$PID"
done

# 3. kill -9 of the master: its workers must leave too (checked by pid). Under
# systemd-socket-activate, the same, and whether the port still accepts connections afterwards.
want 3 && for s in "${servers[@]}" prefork-threads-sa prefork-epoll-sa; do
  if [[ $s == *-sa ]]; then
    next_port
    name=kill-master-$s
    systemd-socket-activate -l "127.0.0.1:$PORT" "$prefork" -c gateway.toml -w 2 -k "$(cut -d- -f2 <<<"$s")" --threads 4 \
      --log-level warning --accesslog "" >"$work/$name.log" 2>&1 &
    PID=$!
    # The first connection makes it exec prefork (once it listens: until then, refused).
    for _ in $(seq 100); do curl -s --max-time 60 "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
    ready "$PID"
    what="$(label "${s%-sa}") under systemd-socket-activate"
  else
    start "kill-master-$s" "$s"
    what=$(label "$s")
  fi
  workers=$(children "$PID")
  strays+=($workers)
  load "$load" "kill-master-$s"
  sleep 1
  t0=$(now_ms)
  kill -KILL "$PID"
  gone=never
  for _ in $(seq 1500); do
    left=$(for w in $workers; do ! alive "$w" || echo "$w"; done)
    [ -z "$left" ] && { gone="$(elapsed "$t0") s"; break; }
    sleep 0.01
  done
  orphans=$(for w in $workers; do ! alive "$w" || echo "$w"; done | tr '\n' ' ')
  refused=$(curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/" && echo "no: answered" || { [ $? -eq 7 ] && echo "yes (refused)" || echo "no answer"; })
  tally "kill-master-$s"
  rows3+=("| $what | $TALLY | $gone | ${orphans:-none} | $refused |")
  wait "$PID" 2>/dev/null || true
done

# 4. The access log's file system full (a 1 MiB tmpfs, filled before the load): serving goes on;
# error-log lines counted each second (target: at most one a second).
want 4 && mount -t tmpfs -o size=1m faults-full "$full"
want 4 && for s in "${servers[@]}"; do
  rm -f "$full"/*
  cat /dev/zero >"$full/filler" 2>/dev/null || true
  errlog=$work/full-$s.errors.log
  : >"$errlog"
  case $s in
    prefork-*) start "full-$s" "$s" --accesslog "$full/access.log" --errorlog "$errlog" ;;
    gthread) start "full-$s" "$s" --access-logfile "$full/access.log" --error-logfile "$errlog" ;;
  esac
  before=$(children "$PID" | sort | tr '\n' ' ')
  # Error output: the error log and whatever the server writes to stdout/stderr (Python's logging
  # reports its own failures on stderr).
  lines() { cat "$errlog" "$work/full-$s.log" | wc -l; }
  load "$load" "full-$s"
  per_second=() last=$(lines)
  for ((i = 0; i < load; i++)); do
    sleep 1
    n=$(lines); per_second+=($((n - last))); last=$n
  done
  after=$(children "$PID" | sort | tr '\n' ' ')
  max=$(printf '%s\n' "${per_second[@]}" | sort -n | tail -n 1)
  replaced=$(comm -23 <(tr ' ' '\n' <<<"$before" | grep .) <(tr ' ' '\n' <<<"$after" | grep .) | wc -l)
  # A dead worker's replacement may itself have died: count the master's reports too.
  replaced="$replaced of 2 at the end; $({ grep -ciE 'killed by signal|terminated due to signal|exited with' "$errlog" "$work/full-$s.log" || true; } | awk -F: '{s += $2} END {print s + 0}') worker deaths logged"
  tally "full-$s"
  rows4+=("| $(label "$s") | $TALLY | ${per_second[*]} | $max | $replaced |")
  echo "full-$s: error lines per second: ${per_second[*]} (max $max)" >&2
  stop "$PID"
done
! mounted || umount "$full"

# 5. The workers' fd limit lowered to 64 (prlimit), then 200 keep-alive connections: accepting must
# back off without spinning a core while they are held, and serve again once they close.
want 5 && for s in "${servers[@]}"; do
  case $s in
    prefork-*) start "fds-$s" "$s" --keepalive 60 ;;
    gthread) start "fds-$s" "$s" --keep-alive 60 ;;
  esac
  workers=$(children "$PID")
  # The limit: what each worker has open plus 16 (a .NET worker has about 80 open at rest, so 64
  # would leave it none; Gunicorn's about 12), so both classes of server get the same headroom.
  open_fds= limits=
  for w in $workers; do
    n=$(ls "/proc/$w/fd" | wc -l)
    prlimit --pid "$w" --nofile=$((n + 16)):$((n + 16))
    open_fds+="$n+" limits+="$((n + 16))/"
  done
  python3 - "$PORT" 200 5 >"$work/fds-$s.held" <<'EOF' &
import select, socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
answered, end = set(), time.time() + hold
while time.time() < end and len(answered) < n:
    ready, _, _ = select.select([s for s in socks if s not in answered], [], [], 0.2)
    answered.update(ready)
time.sleep(max(0, end - time.time()))
print(len(answered))
EOF
  holder=$!
  sleep 1.5
  declare -A t=()
  for w in $workers; do t[$w]=$(ticks "$w"); done
  t0=$(now_ms)
  sleep 3
  cpu=$(for w in $workers; do ! alive "$w" || echo "$(( ($(ticks "$w") - t[$w]) * 100000 / CLK_TCK / ($(now_ms) - t0) ))%"; done | tr '\n' ' ')
  wait "$holder" || true
  answered=$(cat "$work/fds-$s.held")
  t0=$(now_ms)
  back=never
  for _ in $(seq 300); do curl -sf --max-time 1 "http://127.0.0.1:$PORT/" >/dev/null && { back="$(elapsed "$t0") s"; break; }; sleep 0.05; done
  same=$([ "$(children "$PID" | sort)" = "$(sort <<<"$workers")" ] && echo "same workers" || echo "workers replaced")
  rows5+=("| $(label "$s") | ${open_fds%+} | ${limits%/} | $answered / 200 | $cpu | $back | $same |")
  warnings=$(grep -ci 'accept\|too many open files\|EMFILE' "$work/fds-$s.log" || true)
  echo "fds-$s: $warnings log lines about accept/EMFILE" >&2
  stop "$PID"
done

out="bench/results/faults-$(date +%F)-$(hostname).md"
{
  echo "# Faults under load ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname), load average at the end $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "Command: \`bench/faults.sh${1:+ $1}\`; Prefork $(git log -1 --format=%h -- src) (Release), Gunicorn $(gunicorn --version 2>&1 | grep -oP '[\d.]+' | head -1) from Debian."
  echo "Each server: 2 workers (threads: 4 threads each), hello world, \`wrk -t2 -c20 --timeout 5s\` on 127.0.0.1;"
  echo "failed = wrk's socket errors (connect, read, write, timeout) + non-2xx. The machine is shared (2 cores, other builds running): times are upper bounds."
  echo
  echo "## 1. kill -9 of a worker every second ($kills kills, wrk $((kills + 2)) s)"
  echo
  echo "Recovery: from the kill until the master runs 2 workers again (the replacement spawned), the worst of the kills."
  echo
  echo "| server | kills | sent / failed | worst recovery |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows1[@]}"
  echo
  echo "## 2. SIGSTOP of a worker (timeout 2 s, wrk ${load} s)"
  echo
  echo "Served again: from the SIGSTOP until a worker that was not there before answers \`GET /pid\`."
  echo
  echo "| server | sent / failed | stopped worker killed by the master | served by the replacement after |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows2[@]}"
  echo
  echo "## 3. kill -9 of the master (wrk ${load} s, the kill at 1 s)"
  echo
  echo "Workers gone: from the kill until every worker pid has exited. Refused: a connection attempt after that."
  echo
  echo "| server | sent / failed | workers gone after | orphans | port refuses afterwards |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows3[@]}"
  echo
  echo "## 4. Access log on a full file system (1 MiB tmpfs, filled first; wrk ${load} s)"
  echo
  echo "| server | sent / failed | error-output lines, each second | most in a second | workers |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows4[@]}"
  echo
  echo "## 5. Workers' fd limit lowered to 16 above what they hold (prlimit after start), 200 keep-alive connections held 5 s (keepalive 60 s)"
  echo
  echo "CPU: each worker's utime+stime over 3 s while the connections are held (100% = one core). Back: from closing them to a 200."
  echo
  echo "| server | fds open per worker before | limit | connections answered while held | worker CPU | back after | workers |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows5[@]}"
} | tee "$out"
