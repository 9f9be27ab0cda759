#!/usr/bin/env bash
# bench/techempower.sh [--quick | --full]
#
# TechEmpower's four tests side by side against a real PostgreSQL 15 that this script starts in a
# temp dir (bench/techempower/pg.sh) and stops by pid:
#   plaintext  GET /plaintext, 256 connections, 16 requests pipelined on each (bench/techempower/pipeline.lua)
#   json       GET /json, 64 connections, keep-alive
#   db         GET /db (one random World row), 64 connections
#   fortunes   GET /fortunes (query, add a row, sort, escape, render), 64 connections
#   db-256, fortunes-256  the same with 256 connections: TechEmpower runs the database tests at
#              16 to 512 connections and scores the best level; 64 and 256 show how a server scales
# Servers (--quick): Prefork sync and threads with bench/apps/TechEmpowerGateway (blocking Npgsql),
# Prefork epoll with its asynchronous form (Npgsql multiplexing: the commands of all requests in
# flight share 2 connections per worker), with one worker per core and with one worker in all, Kestrel alone and the same ASP.NET Core app under Prefork
# (bench/apps/TechEmpowerKestrel, multiplexing too), Gunicorn sync (bench/apps/techempower_wsgi.py,
# psycopg2), plus PostgreSQL's own ceiling for the db query (pgbench, prepared, 16 clients).
# --full adds Prefork threads ×2×4, epoll and Kestrel with one pooled connection per request in
# flight (no multiplexing) and Gunicorn gthread. Every server is checked (bench/techempower/check.py)
# before any load; rounds interleave the servers and ratios are taken within a round. Each run also
# measures the CPU time the server, PostgreSQL and wrk spent on it (bench/techempower/cpu.py): the
# cost of one request, which a loaded machine distorts much less than requests/s.
#
#   --quick (default)  3 rounds × 2 s per test and server: about 8 minutes on 2 cores
#   --full             5 rounds × 5 s
# Knobs (environment): TE_SERVERS (ids to run, e.g. "prefork-epoll kestrel"; see define_servers),
# TE_TESTS (e.g. "db fortunes"), TE_ROUNDS, TE_DURATION (seconds per wrk run), TE_MUX_POOL
# (connections per worker with multiplexing), TE_PG_CLIENTS (pgbench's), TE_DOTNET_ENV (runtime
# environment of the .NET servers, replacing DOTNET_ENV below), TE_OUT (results file),
# TE_NO_BUILD=1 (reuse the last build in bench/.work/techempower), TE_PREFORK_BUILD (a published
# Prefork to use instead of building one: bench/run.sh passes its own), TE_PREFORK_BASELINE (another
# published Prefork: adds the servers prefork-epoll-baseline and prefork-epoll-1-baseline, to
# compare two builds in one run).
# bench/techempower/profile.sh shows where one server's CPU goes (perf: threads, switches, syscalls).
# Needs (installed with apt-get when missing): wrk, curl, gunicorn, python3-psycopg2, postgresql,
# time (/usr/bin/time), and gnuplot-nox for the plot.
# Writes bench/results/techempower-<date>-<host>.md and .png; raw data in bench/.work/techempower/.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
WORK=$BENCH/.work/techempower
MODE=quick
case "${1:-}" in
  "" | --quick) ;;
  --full) MODE=full ;;
  *) echo "usage: bench/techempower.sh [--quick | --full]" >&2; exit 2 ;;
esac
if [ $MODE = quick ]; then ROUNDS=${TE_ROUNDS:-3} DURATION=${TE_DURATION:-2}; else ROUNDS=${TE_ROUNDS:-5} DURATION=${TE_DURATION:-5}; fi
CORES=$(nproc)
SYNC_WORKERS=$((2 * CORES + 1)) # blocking workers: the usual 2 × cores + 1
ASYNC_WORKERS=$CORES
THREADS=8                       # Prefork threads: threads per worker, one pooled connection each
GTHREAD_THREADS=4
EPOLL_POOL=32                   # without multiplexing: one Npgsql connection per request in flight (64 over 2 workers)
KESTREL_POOL=64                 # one process: one pool for all 64 connections
MUX_POOL=${TE_MUX_POOL:-2}      # multiplexing: the commands of all requests in flight share these, per worker
KESTREL_MUX_POOL=${TE_KESTREL_MUX_POOL:-$((ASYNC_WORKERS * MUX_POOL))} # as many as Prefork's workers hold together
# Runtime knobs for all the .NET servers alike. On 2 cores shared with wrk and PostgreSQL, the
# thread pool's idle threads spinning for work (up to 70 µs each time, in every process) cost more
# CPU than the queries: no spinning. Socket completions run on the runtime's own epoll thread
# instead of one hop further on a pool thread (Npgsql's reads; Kestrel's too).
DOTNET_ENV=${TE_DOTNET_ENV-DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1}
# --quick: one of each kind; --full adds the pools without multiplexing and Gunicorn gthread.
DEFAULT_SERVERS="prefork-sync prefork-threads prefork-epoll prefork-epoll-1 aspnetcore-prefork kestrel gunicorn-sync"
[ $MODE = full ] && DEFAULT_SERVERS+=" prefork-threads-4 prefork-epoll-pool kestrel-pool gunicorn-gthread"
SELECTED_SERVERS=${TE_SERVERS:-$DEFAULT_SERVERS}
PIPELINE=16
PREFORK_DIR=${TE_PREFORK_BUILD:-$WORK/prefork} # bench/run.sh passes the build it made
PG_CLIENTS=${TE_PG_CLIENTS:-16} # pgbench's clients for PostgreSQL's own ceiling

# test  path        connections  pipelined
TESTS=(${TE_TESTS:-plaintext json db fortunes db-256 fortunes-256})
declare -A TEST_PATH=([plaintext]=/plaintext [json]=/json [db]=/db [fortunes]=/fortunes [db-256]=/db [fortunes-256]=/fortunes)
declare -A TEST_CONNS=([plaintext]=256 [json]=64 [db]=64 [fortunes]=64 [db-256]=256 [fortunes-256]=256)

log() { printf '[techempower %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

source "$BENCH/techempower/pg.sh"

# ---------------------------------------------------------------------------------------------
# Processes: every server's pid, stopped (TERM, then KILL after 15 s) on any exit.

SERVERS=()
declare -A LABEL PORT PID CMD SETTINGS SENV
stop_server() { # id
  local pid=${PID[$1]:-} i
  [ -n "$pid" ] || return 0
  PID[$1]=
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { log "$1 (pid $pid) did not stop on TERM in 15 s: KILL"; kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; }
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  local id
  for id in "${SERVERS[@]}"; do stop_server "$id"; done
  pg_stop
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_packages() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v curl >/dev/null || missing+=(curl)
  [ -x /usr/bin/gunicorn ] || missing+=(gunicorn)
  /usr/bin/python3 -c 'import psycopg2' 2>/dev/null || missing+=(python3-psycopg2)
  pg_find_bin 2>/dev/null || missing+=(postgresql)
  [ -x /usr/bin/time ] || missing+=(time)
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$WORK/apt.log" 2>&1 || die "apt-get could not install ${missing[*]} (see $WORK/apt.log)"
  pg_find_bin
}

publish() { # name project
  [ -n "${TE_NO_BUILD:-}" ] && [ -d "$WORK/$1" ] && return 0 # a re-run of the same tree
  dotnet publish "$REPO/$2" -c Release -o "$WORK/$1" --nologo -v q >"$WORK/build-$1.log" 2>&1 ||
    { cat "$WORK/build-$1.log" >&2; return 1; }
}

free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

add_server() { # id label settings env command...
  local id=$1
  SERVERS+=("$id")
  LABEL[$id]=$2 SETTINGS[$id]=$3 SENV[$id]=$4
  shift 4
  CMD[$id]="$*"
}

define_servers() {
  local db
  db=$(pg_npgsql)
  local prefork="$PREFORK_DIR/prefork --log-level warning --accesslog '' --control-socket '' --keepalive 5 --backlog 2048"
  local app="-a $WORK/gateway/TechEmpowerGateway.dll:TechEmpowerGateway.TechEmpowerApp"
  local async_app=${app/TechEmpowerApp/TechEmpowerAsyncApp}
  local mux="Multiplexing=true;Maximum Pool Size=$MUX_POOL"
  add_server prefork-sync "Prefork sync ×$SYNC_WORKERS" "blocking Npgsql, pool 1 per worker ($SYNC_WORKERS connections)" \
    "TECHEMPOWER_DB='$db;Maximum Pool Size=1'" "$prefork -k sync -w $SYNC_WORKERS $app"
  add_server prefork-threads "Prefork threads ×$ASYNC_WORKERS×$THREADS" "blocking Npgsql, pool $THREADS per worker ($((ASYNC_WORKERS * THREADS)) connections)" \
    "TECHEMPOWER_DB='$db;Maximum Pool Size=$THREADS'" "$prefork -k threads --threads $THREADS -w $ASYNC_WORKERS $app"
  add_server prefork-threads-4 "Prefork threads ×$ASYNC_WORKERS×4" "blocking Npgsql, pool 4 per worker ($((ASYNC_WORKERS * 4)) connections)" \
    "TECHEMPOWER_DB='$db;Maximum Pool Size=4'" "$prefork -k threads --threads 4 -w $ASYNC_WORKERS $app"
  add_server prefork-epoll "Prefork epoll ×$ASYNC_WORKERS" "IAsyncGatewayApplication, async Npgsql, multiplexing, pool $MUX_POOL per worker ($((ASYNC_WORKERS * MUX_POOL)) connections)" \
    "TECHEMPOWER_DB='$db;$mux'" "$prefork -k epoll -w $ASYNC_WORKERS $async_app"
  # One epoll worker on this machine's 2 cores: its loop serves HTTP while Npgsql's own threads
  # (write loop, socket engine) run beside it, so one process already uses more than one core; a
  # second process halves every batch Npgsql and the loop make, and each thread sleeps and wakes
  # more often per request (bench/techempower/profile.sh: ~1 context switch per db request with
  # one worker, ~2.5 with two).
  add_server prefork-epoll-1 "Prefork epoll ×1" "IAsyncGatewayApplication, async Npgsql, multiplexing, pool $((ASYNC_WORKERS * MUX_POOL)) in its one worker" \
    "TECHEMPOWER_DB='$db;Multiplexing=true;Maximum Pool Size=$((ASYNC_WORKERS * MUX_POOL))'" "$prefork -k epoll -w 1 $async_app"
  # A/B: the epoll servers again from another Prefork build (TE_PREFORK_BASELINE: a published
  # Prefork, e.g. of main), to compare an engine change within one run.
  if [ -n "${TE_PREFORK_BASELINE:-}" ]; then
    local id
    for id in prefork-epoll prefork-epoll-1; do
      add_server "$id-baseline" "${LABEL[$id]} (baseline build)" "as ${LABEL[$id]}, built from TE_PREFORK_BASELINE" \
        "${SENV[$id]}" "${CMD[$id]/$PREFORK_DIR/$TE_PREFORK_BASELINE}"
    done
  fi
  add_server prefork-epoll-pool "Prefork epoll ×$ASYNC_WORKERS, no multiplexing" "IAsyncGatewayApplication, async Npgsql, pool $EPOLL_POOL per worker ($((ASYNC_WORKERS * EPOLL_POOL)) connections)" \
    "TECHEMPOWER_DB='$db;Maximum Pool Size=$EPOLL_POOL'" "$prefork -k epoll -w $ASYNC_WORKERS $async_app"
  add_server aspnetcore-prefork "ASP.NET Core under Prefork ×$ASYNC_WORKERS" "the Kestrel app below as command workers (UsePrefork), async Npgsql, multiplexing, pool $MUX_POOL per worker" \
    "ASPNETCORE_ENVIRONMENT=Production TECHEMPOWER_DB='$db;$mux'" "$prefork -w $ASYNC_WORKERS -- $WORK/kestrel/TechEmpowerKestrel"
  add_server kestrel "Kestrel (1 process)" "minimal API, async Npgsql, multiplexing, pool $KESTREL_MUX_POOL, Web SDK defaults (server GC)" \
    "ASPNETCORE_ENVIRONMENT=Production TECHEMPOWER_DB='$db;Multiplexing=true;Maximum Pool Size=$KESTREL_MUX_POOL'" "$WORK/kestrel/TechEmpowerKestrel --urls http://127.0.0.1:{port}"
  add_server kestrel-pool "Kestrel (1 process), no multiplexing" "minimal API, async Npgsql, pool $KESTREL_POOL, Web SDK defaults (server GC)" \
    "ASPNETCORE_ENVIRONMENT=Production TECHEMPOWER_DB='$db;Maximum Pool Size=$KESTREL_POOL'" "$WORK/kestrel/TechEmpowerKestrel --urls http://127.0.0.1:{port}"
  local gunicorn="/usr/bin/gunicorn --chdir $BENCH/apps --log-level warning --backlog 2048"
  add_server gunicorn-sync "Gunicorn sync ×$SYNC_WORKERS" "psycopg2, 1 connection per worker, PREPAREd; no keep-alive (sync)" \
    "TECHEMPOWER_PG='$(pg_conninfo)'" "$gunicorn -k sync -w $SYNC_WORKERS techempower_wsgi:app"
  add_server gunicorn-gthread "Gunicorn gthread ×$SYNC_WORKERS×$GTHREAD_THREADS" "psycopg2, 1 connection per thread, PREPAREd" \
    "TECHEMPOWER_PG='$(pg_conninfo)'" "$gunicorn -k gthread -w $SYNC_WORKERS --threads $GTHREAD_THREADS techempower_wsgi:app"
  # The same runtime knobs for every .NET server (TE_DOTNET_ENV replaces them).
  for id in "${SERVERS[@]}"; do
    case $id in prefork-* | aspnetcore-* | kestrel*) SENV[$id]+=" $DOTNET_ENV" ;; esac
  done
  # Keep only the chosen ones (TE_SERVERS), in their order of definition.
  local chosen=() id
  for id in "${SERVERS[@]}"; do
    [[ " $SELECTED_SERVERS " == *" $id "* ]] && chosen+=("$id")
  done
  for id in $SELECTED_SERVERS; do
    [ -n "${LABEL[$id]:-}" ] || die "TE_SERVERS: no server '$id' (there are: ${SERVERS[*]})"
  done
  SERVERS=("${chosen[@]}")
}

start_server() { # id
  local id=$1 port cmd i
  port=$(free_port "${NEXT_PORT:-18600}")
  NEXT_PORT=$((port + 1))
  PORT[$id]=$port
  cmd=${CMD[$id]//\{port\}/$port}
  case $id in prefork-* | aspnetcore-*) cmd=${cmd/ -w / -b 127.0.0.1:$port -w } ;; gunicorn-*) cmd+=" -b 127.0.0.1:$port" ;; esac
  CMD[$id]=$cmd
  # setsid: its own process group, so a stuck server's whole tree can be KILLed by group.
  (cd "$WORK" && eval "exec env ${SENV[$id]} setsid $cmd") >"$WORK/logs/$id.log" 2>&1 &
  PID[$id]=$!
  for ((i = 0; i < 600; i++)); do
    curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$port/plaintext" && return 0
    kill -0 "${PID[$id]}" 2>/dev/null || die "$id exited during start-up: $(tail -n 5 "$WORK/logs/$id.log")"
    sleep 0.1
  done
  die "$id did not answer within 60 s: $(tail -n 5 "$WORK/logs/$id.log")"
}

# One wrk run: prints "requests/s errors server-cpu-s postgres-cpu-s wrk-cpu-s" (errors: socket
# errors + non-2xx; CPU: seconds of user + system time each spent during the run, from /proc and
# /usr/bin/time: what a request costs, which the load of a shared machine distorts much less than
# requests/s).
measure() { # id test seconds [warm-up: no CPU sampling]
  local url="http://127.0.0.1:${PORT[$1]}${TEST_PATH[$2]}" args=(-t "$CORES" -c "${TEST_CONNS[$2]}" -d "${3}s" --timeout 5s)
  [ "$2" = plaintext ] && args+=(-s "$BENCH/techempower/pipeline.lua")
  args+=("$url")
  [ "$2" = plaintext ] && args+=(-- "$PIPELINE")
  local before="0 0" after="0 0"
  [ -n "${4:-}" ] || before=$(python3 "$BENCH/techempower/cpu.py" "${PID[$1]}" "$PG_PID")
  timeout -k 5 $(($3 + 30)) /usr/bin/time -f '%U %S' -o "$WORK/last.time" wrk "${args[@]}" >"$WORK/last.wrk" 2>&1 || true
  [ -n "${4:-}" ] || after=$(python3 "$BENCH/techempower/cpu.py" "${PID[$1]}" "$PG_PID")
  local rps errors non2xx cpu
  rps=$(grep -oP 'Requests/sec:\s+\K[\d.]+' "$WORK/last.wrk" || echo 0)
  errors=$(grep -oP 'Socket errors: \K.*' "$WORK/last.wrk" | grep -oP '\d+' | awk '{s += $1} END {print s + 0}' || true)
  non2xx=$(grep -oP 'Non-2xx or 3xx responses: \K\d+' "$WORK/last.wrk" || echo 0)
  cpu=$(echo "$before $after $(tail -n 1 "$WORK/last.time" 2>/dev/null)" | awk '{printf "%.2f %.2f %.2f", $3 - $1, $4 - $2, $5 + $6}')
  echo "$rps $((errors + non2xx)) $cpu"
}

# PostgreSQL's own ceiling for the db query: pgbench, prepared, 16 clients, over the socket.
# Prints "queries/s postgres-cpu-s pgbench-cpu-s".
pg_ceiling() { # seconds
  printf '\\set id random(1, 10000)\nSELECT id, randomnumber FROM world WHERE id = :id;\n' >"$PG_DIR/world.sql"
  chmod a+r "$PG_DIR/world.sql"
  local before after tps as_owner=()
  [ "$(id -u)" -eq 0 ] && as_owner=(runuser -u postgres --) # as pg_as_owner, but a command /usr/bin/time can run
  before=$(python3 "$BENCH/techempower/cpu.py" "$PG_PID")
  tps=$(/usr/bin/time -f '%U %S' -o "$WORK/pgbench.time" "${as_owner[@]}" "$PG_BIN/pgbench" -n -M prepared -c "$PG_CLIENTS" -j "$CORES" -T "$1" -f "$PG_DIR/world.sql" \
    -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U benchmarkdbuser hello_world 2>/dev/null | grep -oP 'tps = \K[\d.]+' | head -n 1 || true)
  after=$(python3 "$BENCH/techempower/cpu.py" "$PG_PID")
  echo "${tps:-0} $(echo "$before $after $(tail -n 1 "$WORK/pgbench.time")" | awk '{printf "%.2f %.2f", $2 - $1, $3 + $4}')"
}

main() {
  local started=$SECONDS
  mkdir -p "$WORK/logs" "$BENCH/results"
  rm -f "$WORK"/logs/*.log
  ensure_packages
  ulimit -n 65536 2>/dev/null || true
  local load_start
  load_start=$(cut -d' ' -f1-3 /proc/loadavg)
  log "building (dotnet publish -c Release) while PostgreSQL starts"
  local b1
  if [ -n "${TE_PREFORK_BUILD:-}" ]; then true & b1=$!; else publish prefork src/Prefork.Cli/Prefork.Cli.csproj & b1=$!; fi
  publish gateway bench/apps/TechEmpowerGateway/TechEmpowerGateway.csproj &
  local b2=$!
  publish kestrel bench/apps/TechEmpowerKestrel/TechEmpowerKestrel.csproj &
  local b3=$!
  # Pools: 5 + 16 + 64 + 64 + 64 + 5 + 20 connections at most, pgbench 16, psql: room to spare.
  pg_start 300
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') pid $PG_PID on $PG_SOCKET_DIR and 127.0.0.1:$PG_PORT"
  wait $b1 && wait $b2 && wait $b3 || die "a build failed"

  define_servers
  local id test round rps errors server_cpu pg_cpu wrk_cpu
  for id in "${SERVERS[@]}"; do
    log "starting $id"
    start_server "$id"
  done
  for id in "${SERVERS[@]}"; do
    python3 "$BENCH/techempower/check.py" "http://127.0.0.1:${PORT[$id]}" || die "$id answers wrongly (see above): not measured"
  done
  log "all ${#SERVERS[@]} servers answer the four tests correctly; warming up (1 s per test and .NET server)"
  # Warm-up: the .NET servers' JIT (Gunicorn needs none); without the CPU sampling.
  for id in "${SERVERS[@]}"; do
    [[ $id == gunicorn-* ]] && continue
    for test in "${TESTS[@]}"; do measure "$id" "$test" 1 warm-up >/dev/null; done
  done

  local raw=$WORK/raw.tsv
  printf 'round\ttest\tpath\tconnections\tserver\trps\terrors\tserver_cpu\tpg_cpu\twrk_cpu\n' >"$raw"
  for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS: ${#TESTS[@]} tests × ${#SERVERS[@]} servers × ${DURATION} s (load $(cut -d' ' -f1 /proc/loadavg))"
    for test in "${TESTS[@]}"; do
      # What the report says of the test: its path and connections, declared once above.
      local about="$test\t${TEST_PATH[$test]}\t${TEST_CONNS[$test]}$([ "$test" = plaintext ] && echo " (×$PIPELINE pipelined)")"
      for id in "${SERVERS[@]}"; do
        read -r rps errors server_cpu pg_cpu wrk_cpu < <(measure "$id" "$test" "$DURATION")
        printf '%d\t%b\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$about" "$id" "$rps" "$errors" "$server_cpu" "$pg_cpu" "$wrk_cpu" >>"$raw"
      done
      if [ "$test" = db ]; then
        read -r rps pg_cpu wrk_cpu < <(pg_ceiling "$DURATION")
        printf '%d\t%b\tpostgresql\t%s\t0\t\t%s\t%s\n' "$round" "$about" "$rps" "$pg_cpu" "$wrk_cpu" >>"$raw"
      fi
    done
  done
  local load_end
  load_end=$(cut -d' ' -f1-3 /proc/loadavg)
  for id in "${SERVERS[@]}"; do stop_server "$id"; done

  local servers=$WORK/servers.tsv
  printf 'id\tlabel\tsettings\tcommand\n' >"$servers"
  for id in "${SERVERS[@]}"; do printf '%s\t%s\t%s\t%s\n' "$id" "${LABEL[$id]}" "${SETTINGS[$id]}" "${SENV[$id]} ${CMD[$id]}" >>"$servers"; done
  printf 'postgresql\tPostgreSQL alone (pgbench, prepared, %s clients)\tthe db query only: the ceiling (its CPU column "wrk" is pgbench'"'"'s)\t%s\n' "$PG_CLIENTS" \
    "pgbench -n -M prepared -c $PG_CLIENTS -j $CORES -T $DURATION -f world.sql (SELECT id, randomnumber FROM world WHERE id = :id)" >>"$servers"
  local out=${TE_OUT:-$BENCH/results/techempower-$(date +%F)-$(hostname -s).md}
  python3 "$BENCH/techempower/report.py" "$raw" "$servers" \
    "bench/techempower.sh$([ $MODE = quick ] && echo "" || echo " --full")" "$ROUNDS" "$DURATION" \
    "$load_start" "$load_end" "$CORES" "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), .NET $(dotnet --version), $(/usr/bin/gunicorn --version 2>&1 | head -n 1), Npgsql 10.0.3, psycopg2 $(/usr/bin/python3 -c 'import psycopg2; print(psycopg2.__version__.split()[0])'), Linux $(uname -r), kernel.sched_autogroup_enabled $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo -)" \
    "$WORK/plot" >"$out"
  if command -v gnuplot >/dev/null; then
    gnuplot -e "dat='$WORK/plot'; out='${out%.md}.png'" "$BENCH/techempower/plot.gp" 2>"$WORK/gnuplot.log" ||
      { cat "$WORK/gnuplot.log" >&2; die "gnuplot failed"; }
    printf '\n![requests/s per test and server; CPU per request](%s)\n' "$(basename "${out%.md}.png")" >>"$out"
  else
    log "gnuplot is not installed (apt-get install gnuplot-nox): no plot"
  fi
  log "done in $((SECONDS - started)) s: $out"
}

main
