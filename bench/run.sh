#!/usr/bin/env bash
# bench/run.sh [--full | --quick | --smoke]
#
# Measures Prefork against Gunicorn, Kestrel and nginx with wrk, on loopback only, and writes
# bench/results/<date>-<host>.md plus PNG plots (bench/README.md says what and how to read it).
#
#   --full (default)  every scenario, 5 runs each, the workers sweep: about 30 minutes on 2 cores
#   --quick           fewer scenarios and servers, 3 one-second runs each: about 3.5 minutes on 2 idle cores
#
# Then (not --smoke) bench/techempower.sh with the same mode: TechEmpower's plaintext, json, db and
# fortunes tests against a PostgreSQL 15 it starts itself (about 5 more minutes with --quick).
#   --smoke           build, start each server once, one 2-second wrk each, check that a results
#                     file comes out; writes under bench/.work/smoke/, not results/ (for CI)
#
# Installs what it lacks (apt-get: wrk, gunicorn, nginx-light, gnuplot-nox, time, curl), builds
# Prefork and the Kestrel comparator with `dotnet publish` into bench/.work/, starts every server
# on its own 127.0.0.1 port, and stops all it started, by pid, on exit, failure or Ctrl-C.
#
# Knobs (environment): PREFORK_CLASSES="sync threads epoll" (classes to try; one that
# `prefork --check-config -k CLASS` rejects is skipped and noted), BENCH_RUNS, BENCH_DURATION
# (seconds per wrk run), PACED_RATE (requests/s of the fixed-rate run), BENCH_PORT_BASE.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
WORK=$BENCH/.work
CORES=$(nproc)
CLK_TCK=$(getconf CLK_TCK)

MODE=full
case "${1:-}" in
  "" | --full) ;;
  --quick) MODE=quick ;;
  --smoke) MODE=smoke ;;
  *) echo "usage: bench/run.sh [--full | --quick | --smoke]" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------------------------------------
# What runs: budgets, comparators, scenarios.

case $MODE in
  #            runs  seconds  paced runs  paced s  start-ups  warm-up s
  full)  budget=(5    3        3           8        3          2) ;;
  quick) budget=(3    1        1           2        1          1) ;;
  smoke) budget=(1    2        0           0        1          0) ;;
esac
RUNS=${BENCH_RUNS:-${budget[0]}}
DURATION=${BENCH_DURATION:-${budget[1]}}
PACED_RUNS=${budget[2]} PACED_DURATION=${budget[3]} STARTUP_RUNS=${budget[4]} WARMUP=${budget[5]}

PREFORK_CLASSES=${PREFORK_CLASSES:-sync threads epoll}
# Flags a worker class needs beyond -k (threads: threads per worker).
declare -A PREFORK_CLASS_FLAGS=([threads]="--threads 4")
SYNC_WORKERS=$((2 * CORES + 1))  # the usual advice for blocking workers (Gunicorn's, Prefork's --help)
ASYNC_WORKERS=$CORES             # one per core for threads/epoll (prefork --help)
GTHREAD_THREADS=4
PACED_RATE=${PACED_RATE:-2000}   # the fixed-rate run: requests/s over all its connections
PACED_CONNS=50
WRK_TIMEOUT=5                    # seconds before wrk counts a request as timed out
PORT_BASE=${BENCH_PORT_BASE:-18400}
FD_NEEDED=12000                  # 5000 connections on each side of loopback, plus slack

# modes: s smoke, q quick, f full. sweep: also run on every worker count of every Prefork class
# (the workers plot). nginx serves only "/" (return 200), so it runs only the scenarios on "/".
SCENARIO_TABLE='
# id             modes path               conns close body sweep expect what
hello-ka-50      sqf   /                  50    no    0    yes   13     GET / (13 B), keep-alive, 50 connections
hello-close-50   qf    /                  50    yes   0    no    13     GET / (13 B), Connection: close, 50 connections
hello-ka-500     qf    /                  500   no    0    no    13     GET / (13 B), keep-alive, 500 connections
hello-close-500  f     /                  500   yes   0    no    13     GET / (13 B), Connection: close, 500 connections
hello-ka-5000    f     /                  5000  no    0    no    13     GET / (13 B), keep-alive, 5000 connections
bytes16k-50      f     /bytes/16k         50    no    0    no    16384  GET 16 KiB, keep-alive, 50 connections
bytes1m-50       qf    /bytes/1m          50    no    0    no    1048576 GET 1 MiB, keep-alive, 50 connections
echo4k-50        qf    /echo-body         50    no    4096 no    4096   POST 4 KiB echoed back, keep-alive, 50 connections
slow-50          qf    /slow-async?ms=50  50    no    0    yes   6      GET, the app waits 50 ms (awaits where it can), 50 connections
'

# ---------------------------------------------------------------------------------------------
# Small helpers.

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
note() { printf '%s\n' "$*" >>"$RUN/notes.txt"; log "note: $*"; }
tsv() { local IFS=$'\t'; printf '%s\n' "$*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Runs a command with a hard time limit, in the background so that a signal reaches our trap at
# once instead of after the command (bash defers traps while a foreground child runs).
CHILD=
bounded() {
  local limit=$1 rc=0
  shift
  timeout -k 5 "$limit" "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=
  return $rc
}

# ---------------------------------------------------------------------------------------------
# Set-up: packages, file descriptors, builds.

# Debian packages for the commands we use. In a container without an init system, invoke-rc.d
# refuses to start nginx's service on install, so installing nginx-light starts nothing.
ensure_packages() {
  local -A package_of=([wrk]=wrk [gunicorn]=gunicorn [nginx]=nginx-light [gnuplot]=gnuplot-nox
    [/usr/bin/time]=time [curl]=curl [python3]=python3 [timeout]=coreutils)
  local missing=() cmd
  for cmd in "${!package_of[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${package_of[$cmd]}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$WORK/apt.log" 2>&1 ||
    log "apt-get could not install all of ${missing[*]} (see $WORK/apt.log); what is missing is skipped below"
  for cmd in wrk curl python3 /usr/bin/time; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is required and could not be installed"
  done
}

# Debian's Gunicorn (/usr/bin), not one a Python version manager may put first on PATH.
find_gunicorn() {
  GUNICORN=/usr/bin/gunicorn
  [ -x "$GUNICORN" ] || GUNICORN=$(command -v gunicorn || true)
}

# 5000 connections need 5000 descriptors in wrk and as many in the server: raise the soft limit
# (inherited by every server we start), the hard one too if we may.
raise_fd_limit() {
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $FD_NEEDED ]; then
    ulimit -Hn $FD_NEEDED 2>/dev/null || true
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  fi
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $FD_NEEDED ]; then
    note "ulimit -n is $(ulimit -n), under the $FD_NEEDED needed: the 5000-connection scenario is skipped"
    SKIP_5000=yes
  fi
}

# Release builds, published into bench/.work/ so the bench never runs what a developer is editing.
# Both at once: they share nothing, and the wait is most of a quick run's set-up.
publish() { # name project
  dotnet publish "$2" -c Release -o "$WORK/$1" --nologo -v q >"$RUN/build-$1.log" 2>&1
}
build() {
  local projects=(prefork) pids=() i
  log "building Prefork (dotnet publish -c Release)"
  publish prefork "$REPO/src/Prefork.Cli/Prefork.Cli.csproj" &
  pids+=($!)
  if dotnet --list-runtimes | grep -q '^Microsoft.AspNetCore.App '; then
    log "building the Kestrel comparator"
    publish kestrel "$BENCH/kestrel/KestrelBench.csproj" &
    pids+=($!) projects+=(kestrel)
    HAVE_KESTREL=yes
  else
    note "the ASP.NET Core shared framework (Microsoft.AspNetCore.App) is not installed: Kestrel is skipped"
  fi
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { cat "$RUN/build-${projects[$i]}.log" >&2; die "${projects[$i]} does not build"; }
  done
}

# ---------------------------------------------------------------------------------------------
# The servers. Each has an id, a kind (its launcher below), the launcher's arguments, a role
# (main: every scenario; sweep: only the sweep scenarios) and, for the seed's table, a seed row.

SERVERS=()
declare -A SV_KIND SV_ARGS SV_ROLE SV_SEED SV_LABEL SV_PORT SV_PID SV_CMD SV_SETTINGS
next_port=$PORT_BASE

add_server() { # id kind role seed label [launcher args...]
  local id=$1
  [ -n "${SV_KIND[$id]:-}" ] && return # a sweep point that is also a main server
  SERVERS+=("$id")
  SV_KIND[$id]=$2 SV_ROLE[$id]=$3 SV_SEED[$id]=$4 SV_LABEL[$id]=$5
  shift 5
  SV_ARGS[$id]="$*"
  while (exec 3<>"/dev/tcp/127.0.0.1/$next_port") 2>/dev/null; do next_port=$((next_port + 1)); done
  SV_PORT[$id]=$next_port
  next_port=$((next_port + 1))
}

# Whether this build of Prefork accepts a worker class (with the flags it needs); notes why not.
prefork_accepts() { # class
  local why
  # shellcheck disable=SC2086  # the class flags are words
  if why=$(cd "$WORK" && ./prefork/prefork --check-config -k "$1" ${PREFORK_CLASS_FLAGS[$1]:-} 2>&1); then
    return 0
  fi
  note "Prefork worker class '$1' skipped: \`prefork --check-config -k $1 ${PREFORK_CLASS_FLAGS[$1]:-}\` says: ${why//$'\n'/ }"
  return 1
}

define_servers() {
  if command -v nginx >/dev/null; then
    add_server nginx nginx main ceiling "nginx return 200 (ceiling)"
  else
    note "nginx is not installed and could not be: the nginx ceiling is skipped"
  fi
  if [ -n "$GUNICORN" ]; then
    add_server gunicorn-sync gunicorn main gunicorn "Gunicorn sync ×$SYNC_WORKERS" sync "$SYNC_WORKERS"
    # gthread: below sync in every quick scenario; --quick leaves it out to stay under 10 minutes.
    [ "$MODE" = quick ] || add_server gunicorn-gthread gunicorn main - "Gunicorn gthread ×$SYNC_WORKERS×$GTHREAD_THREADS" gthread "$SYNC_WORKERS"
  else
    note "gunicorn is not installed and could not be: Gunicorn is skipped"
  fi
  [ -n "${HAVE_KESTREL:-}" ] && add_server kestrel kestrel main - "Kestrel (1 process)"
  local class workers seed w
  for class in $PREFORK_CLASSES; do
    prefork_accepts "$class" || continue
    case $class in
      sync)
        add_server prefork-sync-w1 prefork main single "Prefork sync ×1" sync 1
        workers=$SYNC_WORKERS seed=multi ;;
      epoll) workers=$ASYNC_WORKERS seed=nonblocking ;;
      *) workers=$ASYNC_WORKERS seed=- ;;
    esac
    add_server "prefork-$class-w$workers" prefork main "$seed" "Prefork $class ×$workers" "$class" "$workers"
    if [ "$MODE" = full ]; then
      for ((w = 1; w <= SYNC_WORKERS; w++)); do
        add_server "prefork-$class-w$w" prefork sweep - "Prefork $class ×$w" "$class" "$w"
      done
    fi
  done
}

# Launchers: each fills CMD (the argv, run in bench/.work/) and SETTINGS (for the results file).
launch_prefork() { # port class workers
  # shellcheck disable=SC2206  # the class flags are words
  CMD=(./prefork/prefork -b "127.0.0.1:$1" -w "$3" -k "$2" ${PREFORK_CLASS_FLAGS[$2]:-}
    --log-level warning --accesslog "" --control-socket "" --keepalive 2 --timeout 30 --backlog 2048)
  # No control socket: every master runs in bench/.work/, where the default prefork.ctl would be one path for all.
  SETTINGS="worker_class=$2, workers=$3${PREFORK_CLASS_FLAGS[$2]:+ (${PREFORK_CLASS_FLAGS[$2]})}, keepalive=2 s, timeout=30 s, backlog=2048, access log off, control socket off, loglevel warning; Release build, workstation non-concurrent GC (Prefork.Cli's csproj), sample app"
}

launch_gunicorn() { # port class workers
  CMD=("$GUNICORN" --chdir "$BENCH/apps" -b "127.0.0.1:$1" -k "$2" -w "$3" --log-level warning)
  SETTINGS="worker_class=$2, workers=$3"
  if [ "$2" = gthread ]; then
    CMD+=(--threads "$GTHREAD_THREADS")
    SETTINGS+=", threads=$GTHREAD_THREADS, keepalive=2 s (default), worker_connections=1000 (default)"
  else
    SETTINGS+=", no keep-alive (a sync worker closes every connection)"
  fi
  CMD+=(wsgi_app:app)
  SETTINGS+=", timeout=30 s, backlog=2048 (defaults), access log off, Debian's gunicorn on $(/usr/bin/python3 --version 2>&1), bench/apps/wsgi_app.py"
}

launch_kestrel() { # port
  CMD=(env Logging__LogLevel__Default=Warning ASPNETCORE_ENVIRONMENT=Production
    ./kestrel/KestrelBench --urls "http://127.0.0.1:$1")
  SETTINGS="one process, ASP.NET Core minimal API (bench/kestrel), Release, Web SDK defaults (server GC, tiered PGO), Kestrel defaults (no connection limit), log level Warning"
}

launch_nginx() { # port
  local dir=$WORK/nginx/$1
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
# Generated by bench/run.sh: the machine's ceiling, nginx answering from its config.
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 10240; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$1;
        location = / { default_type text/plain; return 200 "Hello, World!"; }
    }
}
EOF
  CMD=(nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g "daemon off;")
  SETTINGS="worker_processes auto ($CORES), worker_connections 10240, access log off, keepalive defaults (65 s, 1000 requests), location = / { return 200 \"Hello, World!\"; }"
}

# Starts a server and waits for its first 200 on "/": that wait is its start-up time.
start_server() { # id
  local id=$1 port=${SV_PORT[$1]} t0 pid
  # shellcheck disable=SC2086  # the launcher's arguments are words
  "launch_${SV_KIND[$id]}" "$port" ${SV_ARGS[$id]}
  SV_CMD[$id]=$(printf '%q ' "${CMD[@]}")
  SV_SETTINGS[$id]=$SETTINGS
  t0=$(now_ms)
  # setsid: its own session, so a Ctrl-C reaches only us and we stop it in order.
  (cd "$WORK" && exec setsid "${CMD[@]}") >>"$WORK/logs/$id.log" 2>&1 &
  pid=$!
  SV_PID[$id]=$pid
  local deadline=$((t0 + 60000))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/")" = 200 ]; do
    alive "$pid" || die "$id exited during start-up; see $WORK/logs/$id.log"
    [ "$(now_ms)" -lt $deadline ] || die "$id did not answer within 60 s; see $WORK/logs/$id.log"
    sleep 0.01
  done
  tsv "$id" $(($(now_ms) - t0)) >>"$RUN/startup.tsv"
}

alive() { # pid: running, not a zombie
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# Every process under a pid (itself first) into TREE, from the kernel's children lists of all
# its threads. Builtins only: it runs twice per wrk run, and forks are slow on a loaded machine.
tree_pids() {
  TREE=()
  walk_tree "$1"
}
walk_tree() {
  local task children child
  TREE+=("$1")
  for task in /proc/"$1"/task/*; do
    children=
    read -r children 2>/dev/null <"$task/children" || true # one line, no newline: read "fails" at EOF
    for child in $children; do walk_tree "$child"; done
  done
}

# Stops servers by pid: TERM to each master (graceful stop), then KILL whatever of their process
# trees is left after the grace period.
stop_servers() { # ids...
  local id pids=() pid deadline
  for id in "$@"; do
    [ -n "${SV_PID[$id]:-}" ] || continue
    tree_pids "${SV_PID[$id]}"
    pids+=("${TREE[@]}")
    kill -TERM "${SV_PID[$id]}" 2>/dev/null || true
  done
  deadline=$(($(now_ms) + 15000))
  for pid in "${pids[@]}"; do
    while alive "$pid" && [ "$(now_ms)" -lt $deadline ]; do sleep 0.05; done
  done
  for pid in "${pids[@]}"; do
    if alive "$pid"; then
      log "pid $pid did not stop on TERM within 15 s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for id in "$@"; do
    [ -n "${SV_PID[$id]:-}" ] && { wait "${SV_PID[$id]}" 2>/dev/null || true; }
    SV_PID[$id]=
  done
}

cleanup() {
  trap - EXIT INT TERM
  [ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null
  [ ${#SERVERS[@]} -gt 0 ] && stop_servers "${SERVERS[@]}"
}

# ---------------------------------------------------------------------------------------------
# Measures.

# CPU ticks of a server into TICKS: every live process of its tree, plus the children the master
# reaped.
cpu_ticks() { # master pid
  local pid stat f
  TICKS=0
  tree_pids "$1"
  for pid in "${TREE[@]}"; do
    read -r stat 2>/dev/null <"/proc/$pid/stat" || continue
    read -r -a f <<<"${stat##*) }" # fields from 3 (state) on: utime is [11], stime [12]
    TICKS=$((TICKS + f[11] + f[12]))
    if [ "$pid" = "$1" ]; then TICKS=$((TICKS + f[13] + f[14])); fi # cutime, cstime
  done
}

# Resident memory of a server's processes (VmRSS, master first) and their proportional share
# (Pss: shared pages split between the processes that map them, so the total does not count
# them once per process).
sample_memory() { # id phase
  local id=$1 rss=() pss=0 pid kb
  tree_pids "${SV_PID[$id]}"
  for pid in "${TREE[@]}"; do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$kb" ] || continue
    rss+=("$pid:$kb")
    pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
  done
  tsv "$id" "$2" "$pss" "${rss[@]}" >>"$RUN/memory.tsv"
}

# One wrk run, appended to raw.jsonl with the server's and wrk's CPU time around it.
run_wrk() { # type(closed|paced) id scenario round seconds
  local type=$1 id=$2 sc=$3 round=$4 seconds=$5
  local conns=${SC_CONNS[$sc]} threads url before line json=null user=null sys=null args
  url="http://127.0.0.1:${SV_PORT[$id]}${SC_PATH[$sc]}"
  threads=$((conns < CORES ? conns : CORES))
  # Paced: one wrk thread per connection, so each response answers its thread's last request.
  [ "$type" = paced ] && threads=$conns
  args=(-t "$threads" -c "$conns" -d "${seconds}s" --timeout "${WRK_TIMEOUT}s" -s "$BENCH/lua/bench.lua")
  [ "${SC_CLOSE[$sc]}" = yes ] && args+=(-H "Connection: close")
  args+=("$url" --)
  [ "${SC_BODY[$sc]}" -gt 0 ] && args+=("body=${SC_BODY[$sc]}")
  [ "$type" = paced ] && args+=("interval=$((conns * 1000000 / PACED_RATE))")
  cpu_ticks "${SV_PID[$id]}"
  before=$TICKS
  rm -f "$RUN/time.out" "$RUN/wrk.out" # a run killed by its timeout must not inherit the last one's
  bounded $((seconds + 30)) /usr/bin/time -f '%U %S' -o "$RUN/time.out" wrk "${args[@]}" >"$RUN/wrk.out" 2>&1 ||
    note "wrk against $id ($sc) failed: $(tail -n 3 "$RUN/wrk.out" | tr '\n' ' ')"
  cpu_ticks "${SV_PID[$id]}"
  while IFS= read -r line; do
    if [[ "$line" == "BENCH_JSON "* ]]; then json=${line#BENCH_JSON }; fi
  done <"$RUN/wrk.out"
  touch "$RUN/time.out"
  # time.out: "USER SYS" on its last line (after "Command exited with non-zero status N" if so).
  while read -r line; do
    if [[ "$line" =~ ^([0-9.]+)\ ([0-9.]+)$ ]]; then user=${BASH_REMATCH[1]} sys=${BASH_REMATCH[2]}; fi
  done <"$RUN/time.out"
  printf '{"type":"%s","server":"%s","scenario":"%s","round":%d,"server_ticks":%d,"client_user_s":%s,"client_sys_s":%s,"wrk":%s}\n' \
    "$type" "$id" "$sc" "$round" $((TICKS - before)) "$user" "$sys" "$json" >>"$RUN/raw.jsonl"
}

# Which scenarios a server runs: nginx only "/", sweep points only the sweep scenarios.
runs_scenario() { # id scenario
  [ "${SV_KIND[$1]}" != nginx ] || [ "${SC_PATH[$2]}" = / ] || return 1
  [ "${SV_ROLE[$1]}" = main ] || [ "${SC_SWEEP[$2]}" = yes ]
}

# Each route answers 200 with the bytes we expect, on every server, before any load.
check_routes() {
  local id sc got
  for id in "${SERVERS[@]}"; do
    for sc in "${SCENARIOS[@]}"; do
      runs_scenario "$id" "$sc" || continue
      local curl_args=(-s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5)
      [ "${SC_BODY[$sc]}" -gt 0 ] && curl_args+=(--data-binary "@$RUN/body" -H 'Content-Type: application/octet-stream')
      got=$(curl "${curl_args[@]}" "http://127.0.0.1:${SV_PORT[$id]}${SC_PATH[$sc]}" || true)
      [ "$got" = "200 ${SC_EXPECT[$sc]}" ] ||
        note "$id answers ${SC_PATH[$sc]} with '$got' (status, bytes), expected '200 ${SC_EXPECT[$sc]}'"
    done
  done
}

# ---------------------------------------------------------------------------------------------

load_scenarios() {
  SCENARIOS=()
  declare -gA SC_PATH SC_CONNS SC_CLOSE SC_BODY SC_SWEEP SC_EXPECT
  local id modes path conns close body sweep expect what
  while read -r id modes path conns close body sweep expect what; do
    [[ -z "$id" || "$id" == \#* ]] && continue
    [[ "$modes" == *"${MODE:0:1}"* ]] || continue
    [ "$conns" -ge 5000 ] && [ -n "${SKIP_5000:-}" ] && continue
    SCENARIOS+=("$id")
    SC_PATH[$id]=$path SC_CONNS[$id]=$conns SC_CLOSE[$id]=$close SC_BODY[$id]=$body
    SC_SWEEP[$id]=$sweep SC_EXPECT[$id]=$expect
    tsv "$id" "$path" "$conns" "$close" "$body" "$sweep" "$what" >>"$RUN/scenarios.tsv"
  done <<<"$SCENARIO_TABLE"
}

write_meta() { # when (start|end)
  if [ "$1" = start ]; then
    {
      tsv mode "$MODE"
      tsv command "bench/run.sh$([ "$MODE" = full ] || echo " --$MODE")"
      tsv started "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
      tsv host "$(hostname -s)"
      tsv cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
      tsv cores "$CORES"
      tsv memory "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
      tsv kernel "$(uname -sr)"
      tsv os "$(. /etc/os-release && echo "$PRETTY_NAME")"
      tsv load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
      tsv prefork_commit "$(git -C "$REPO" log -1 --format=%h -- src)$(git -C "$REPO" diff --quiet HEAD -- src || echo ' (with uncommitted changes in src/)')"
      tsv dotnet "$(dotnet --version) SDK; $(dotnet --list-runtimes | awk '{printf "%s%s %s", sep, $1, $2; sep="; "}')"
      tsv gunicorn "$(${GUNICORN:-false} --version 2>&1 || echo none)"
      tsv nginx "$(nginx -v 2>&1 || echo none)"
      tsv wrk "$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-3 || true)"
      tsv runs "$RUNS"
      tsv duration "$DURATION"
      tsv paced_runs "$PACED_RUNS"
      tsv paced_duration "$PACED_DURATION"
      tsv paced_rate "$PACED_RATE"
      tsv paced_conns "$PACED_CONNS"
      tsv startup_runs "$STARTUP_RUNS"
      tsv warmup "$WARMUP"
      tsv wrk_timeout "$WRK_TIMEOUT"
      tsv clk_tck "$CLK_TCK"
      tsv ulimit_n "$(ulimit -n)"
      tsv plots "$(command -v gnuplot >/dev/null && echo yes || echo no)"
    } >"$RUN/meta.tsv"
  else
    tsv load_end "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN/meta.tsv"
    tsv finished "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" >>"$RUN/meta.tsv"
  fi
}

write_servers() {
  local id
  for id in "${SERVERS[@]}"; do
    tsv "$id" "${SV_KIND[$id]}" "${SV_ROLE[$id]}" "${SV_SEED[$id]}" "${SV_LABEL[$id]}" "${SV_ARGS[$id]:--}" \
      "${SV_PORT[$id]}" "${SV_CMD[$id]}" "${SV_SETTINGS[$id]}" >>"$RUN/servers.tsv"
  done
}

# After the load: which workers were replaced during it, and what each server logged.
inspect_servers() {
  local id lines
  for id in "${SERVERS[@]}"; do
    local first last
    first=$(awk -F'\t' -v id="$id" '$1 == id && $2 == "start" {for (i = 5; i <= NF; i++) print $i}' "$RUN/memory.tsv" | cut -d: -f1 | sort)
    last=$(awk -F'\t' -v id="$id" '$1 == id && $2 == "load" {for (i = 5; i <= NF; i++) print $i}' "$RUN/memory.tsv" | cut -d: -f1 | sort)
    [ "$first" = "$last" ] || note "$id: worker pids changed during the load (workers died or were replaced): before [$(echo $first)], after [$(echo $last)]"
    lines=$(grep -c . "$WORK/logs/$id.log" || true)
    [ "$lines" -eq 0 ] || note "$id logged $lines lines at warning level or above; the first: $(head -n 3 "$WORK/logs/$id.log" | cut -c1-300 | tr '\n' ' ')"
  done
}

plot_results() { # out prefix
  command -v gnuplot >/dev/null || return 0 # noted at the start
  gnuplot -e "dat='$RUN/plot'; out='$1'" "$BENCH/plot.gp" 2>"$RUN/gnuplot.log" ||
    { cat "$RUN/gnuplot.log" >&2; die "gnuplot failed"; }
}

main() {
  local started=$SECONDS
  RUN=$WORK/runs/$(date +%Y%m%d-%H%M%S)
  mkdir -p "$RUN" "$WORK/logs"
  ls -1d "$WORK"/runs/* | head -n -10 | xargs -r rm -rf || true # keep the last ten runs' raw data
  rm -f "$WORK"/logs/*.log
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  ensure_packages
  find_gunicorn
  raise_fd_limit
  load_scenarios
  write_meta start
  command -v gnuplot >/dev/null || note "gnuplot is not installed and could not be: no plots"
  head -c 4096 /dev/zero | tr '\0' x >"$RUN/body"
  build
  define_servers
  [ ${#SERVERS[@]} -gt 0 ] || die "no server to measure"

  local id sc round i
  log "starting ${#SERVERS[@]} servers: ${SERVERS[*]}"
  for id in "${SERVERS[@]}"; do
    # Extra start-ups (full run) give the start-up time a median; the last one stays up.
    for ((i = 1; i < STARTUP_RUNS; i++)); do start_server "$id"; stop_servers "$id"; done
    start_server "$id"
  done
  write_servers
  check_routes
  for id in "${SERVERS[@]}"; do
    [ "$WARMUP" -eq 0 ] || bounded 60 wrk -t "$CORES" -c 50 -d "${WARMUP}s" "http://127.0.0.1:${SV_PORT[$id]}/" >/dev/null 2>&1 || true
    sample_memory "$id" start
  done

  # Rounds interleave the servers: on a shared, noisy machine a disturbance then hits every server
  # alike, and the ratios (taken within a round) stay true.
  for ((round = 1; round <= RUNS; round++)); do
    log "round $round/$RUNS: ${#SCENARIOS[@]} scenarios × servers, ${DURATION} s each"
    for sc in "${SCENARIOS[@]}"; do
      for id in "${SERVERS[@]}"; do
        runs_scenario "$id" "$sc" && run_wrk closed "$id" "$sc" "$round" "$DURATION"
      done
    done
  done
  if [ "$PACED_RUNS" -gt 0 ]; then
    SC_PATH[paced]=/ SC_CONNS[paced]=$PACED_CONNS SC_CLOSE[paced]=no SC_BODY[paced]=0 # what run_wrk reads
    for ((round = 1; round <= PACED_RUNS; round++)); do
      log "fixed rate $round/$PACED_RUNS: $PACED_RATE requests/s over $PACED_CONNS connections, ${PACED_DURATION} s each"
      for id in "${SERVERS[@]}"; do
        [ "${SV_ROLE[$id]}" = main ] && run_wrk paced "$id" paced "$round" "$PACED_DURATION"
      done
    done
  fi

  for id in "${SERVERS[@]}"; do sample_memory "$id" load; done
  stop_servers "${SERVERS[@]}"
  inspect_servers
  write_meta end
  tsv elapsed_s $((SECONDS - started)) >>"$RUN/meta.tsv"

  local results=$BENCH/results stamp
  stamp=$(date +%Y-%m-%d)-$(hostname -s)
  case $MODE in
    quick) stamp+=-quick ;;
    smoke) results=$WORK/smoke stamp+=-smoke ;;
  esac
  mkdir -p "$results"
  python3 "$BENCH/report.py" "$RUN" "$results" "$stamp"
  plot_results "$results/$stamp"
  if [ "$MODE" = smoke ]; then
    for id in "${SERVERS[@]}"; do
      grep -q "${SV_LABEL[$id]}" "$results/$stamp.md" || die "smoke: $id is missing from $results/$stamp.md"
    done
    ! grep -qs 'failed' "$RUN/notes.txt" || die "smoke: a wrk run failed: $(cat "$RUN/notes.txt")"
  fi
  log "done in $((SECONDS - started)) s: $results/$stamp.md"
  # TechEmpower's four tests against a real PostgreSQL: their own script, servers and results file.
  if [ "$MODE" != smoke ]; then
    trap - EXIT # our servers are stopped; techempower.sh stops its own
    TE_PREFORK_BUILD=$WORK/prefork "$BENCH/techempower.sh" "--$MODE"
  fi
}

main
