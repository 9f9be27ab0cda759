#!/usr/bin/env bash
# A fleet behind a real load balancer: three Prefork hosts, each in a network namespace of its own
# (10.77.N.2, a veth pair to the root namespace), behind Debian's HAProxy (bench/fleet/haproxy.cfg:
# active checks on each host's /ready, retries of idempotent requests), with wrk driving load
# through HAProxy the whole time.
#   1. Rolling upgrade, one host at a time: drain it (`prefork ctl drain`: its /ready says 503 while
#      it serves), wait until HAProxy's checks mark it DOWN and it has no request in flight, upgrade
#      it in place (`prefork ctl upgrade`, USR2), wait until its old workers are gone and the new
#      generation serves, `prefork ctl resume`, wait until HAProxy has it UP, move on.
#   2. Host kill: `kill -9` of one host's master and workers, restarted once HAProxy marks it DOWN;
#      failed requests, and seconds until HAProxy marked it down and back up.
# The last line is `fleet: N requests, M failed` for the rolling upgrade (failed = socket errors,
# timeouts and every non-2xx response, counted by bench/fleet/status.lua); exit 1 unless M is 0.
#   bench/fleet.sh [--quick]      (3 min or more on a busy 2-core VM; --quick 2 to 5 min, and writes no results file)
# Writes bench/results/fleet-<date>-<host>.md. Needs root (ip netns). Traffic goes only to
# loopback and to the namespaces; on exit every process started is stopped by pid and the
# namespaces and veth pairs are removed.
set -euo pipefail
source "$(dirname "$0")/lib.sh" # cd to the repository, need, build_prefork, $prefork
prefork=$PWD/$prefork           # absolute: USR2 execs the program again from the master's own cwd

quick=0
[ "${1:-}" = --quick ] && quick=1
hosts=(1 2 3)
victim=2             # the host killed in phase 2
connections=16
slice=5 settle=3     # wrk runs in slices of $slice s, back to back; $settle s of load between steps
[ $quick = 1 ] && slice=3 settle=1
work=$PWD/bench/.work/fleet
mkdir -p "$work"
rm -rf "${work:?}"/*

declare -A master # host number -> its master's pid
haproxy_pid="" load_pid=""
strays=()         # workers of masters killed on purpose: stopped by pid on exit too

alive() { local s; read -r s 2>/dev/null <"/proc/$1/stat" || return 1; s=${s##*) }; [ "${s%% *}" != Z ]; }
# children PID: its live children (a thread may end while its file is read: no error).
children() { { cat /proc/"$1"/task/*/children 2>/dev/null || true; } | tr ' ' '\n' | { grep . || true; } | while read -r p; do ! alive "$p" || echo "$p"; done; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

fleet_cleanup() {
  set +e # a failing step must not end the cleanup before the rest is stopped
  local n pid workers=()
  touch "$work/stop"
  if [ -n "$load_pid" ]; then
    for pid in $(children "$load_pid"); do kill -KILL "$pid" 2>/dev/null; done
    kill -KILL "$load_pid" 2>/dev/null
  fi
  for n in "${!master[@]}"; do
    workers+=($(children "${master[$n]}"))
    kill -TERM "${master[$n]}" 2>/dev/null
  done
  [ -z "$haproxy_pid" ] || kill -TERM "$haproxy_pid" 2>/dev/null
  for _ in $(seq 50); do
    local running=0
    for n in "${!master[@]}"; do ! alive "${master[$n]}" || running=1; done
    [ $running = 0 ] && break
    sleep 0.2
  done
  for n in "${!master[@]}"; do ! alive "${master[$n]}" || kill -KILL "${master[$n]}" 2>/dev/null; done
  for pid in "${workers[@]}" "${strays[@]}"; do ! alive "$pid" || kill -KILL "$pid" 2>/dev/null; done
  [ -z "$haproxy_pid" ] || ! alive "$haproxy_pid" || kill -KILL "$haproxy_pid" 2>/dev/null
  wait 2>/dev/null || true
  for n in "${hosts[@]}"; do
    ip link del "pfleet$n" 2>/dev/null
    ip netns del "pfleet$n" 2>/dev/null
  done
}
trap 'fleet_cleanup >/dev/null 2>&1' EXIT
trap 'echo "fleet: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

[ "$(id -u)" = 0 ] || { echo "fleet.sh needs root (ip netns)" >&2; exit 1; }
command -v ip >/dev/null || { echo "ip is missing (Debian: iproute2)" >&2; exit 1; }
for n in "${hosts[@]}"; do
  if ip netns list | grep -qw "pfleet$n"; then
    echo "network namespace pfleet$n exists: another fleet.sh runs, or a killed one left it (ip netns del pfleet$n)" >&2
    hosts=() # not ours: the cleanup must leave it alone
    exit 1
  fi
done
need wrk haproxy socat curl jq
build_prefork

# The network: host N is 10.77.N.2 in namespace pfleetN; the root namespace is 10.77.N.1 on the
# other end of the veth pair pfleetN. No default route in the namespaces: only HAProxy reaches them.
for n in "${hosts[@]}"; do
  ip netns add "pfleet$n"
  ip link add "pfleet$n" type veth peer name eth0 netns "pfleet$n"
  ip addr add "10.77.$n.1/24" dev "pfleet$n"
  ip link set "pfleet$n" up
  ip -n "pfleet$n" addr add "10.77.$n.2/24" dev eth0
  ip -n "pfleet$n" link set eth0 up
  ip -n "pfleet$n" link set lo up
done

# Host N's configuration: the sample app, readiness on metrics_bind, the control socket beside it.
for n in "${hosts[@]}"; do
  mkdir -p "$work/host$n"
  cat >"$work/host$n/gateway.toml" <<EOF
bind = ["10.77.$n.2:8000"]
workers = 2
worker_class = "threads"
app = "Prefork.SampleApp:Prefork.SampleApp.SampleApplication"
metrics_bind = "10.77.$n.2:9100"
control_socket = "prefork.ctl"
graceful_timeout = 10
# Above HAProxy's idle-connection purge (pool-purge-delay, 5 s): HAProxy closes idle connections first.
keepalive = 30
loglevel = "info"
errorlog = "-"
accesslog = ""
EOF
done

start_host() {
  ip netns exec "pfleet$1" "$prefork" -c "$work/host$1/gateway.toml" >>"$work/host$1/prefork.log" 2>&1 &
  master[$1]=$!
}
host_ready() { curl -sf -o /dev/null --max-time 2 "http://10.77.$1.2:9100/ready"; }
# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s; fails the script naming WHAT.
wait_until() {
  local limit=$1 what=$2 start
  shift 2
  start=$(now)
  until "$@"; do
    if awk -v a="$start" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
      echo "fleet: gave up after ${limit} s waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}

admin() { echo "$*" | socat -t 5 stdio "UNIX-CONNECT:$work/haproxy.sock"; }
# stat HOST FIELD: a column of HAProxy's `show stat` for backend prefork's server hostN.
hastat() {
  admin "show stat" | awk -F, -v s="host$1" -v f="$2" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "prefork" && $2 == s { print $col[f] }'
}
backend_stat() { admin "show stat" | awk -F, -v f="$1" 'NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next } $1 == "prefork" && $2 == "BACKEND" { print $col[f] }'; }
status_is() { [ "$(hastat "$1" status)" = "$2" ]; }
in_flight_is_zero() { [ "$(hastat "$1" scur)" = 0 ]; }

old_workers_gone() {
  local pid
  for pid in $1; do ! alive "$pid" || return 1; done
}
ctl() { local n=$1; shift; "$prefork" ctl --socket "$work/host$n/prefork.ctl" "$@"; }
# full_strength N: every worker host N has serves (its /ready stays 503 while it is drained).
full_strength() { ctl "$1" status --json 2>/dev/null | jq -e '.target_workers as $t | [.workers[] | select(.state == "serving")] | length == $t' >/dev/null; }
upgraded() { old_workers_gone "$2" && full_strength "$1"; }

for n in "${hosts[@]}"; do start_host "$n"; done
for n in "${hosts[@]}"; do wait_until 120 "host $n to be ready" host_ready "$n"; done

port=18480
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
FLEET_PORT=$port FLEET_WORK=$work haproxy -f bench/fleet/haproxy.cfg -db >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
wait_until 30 "HAProxy's admin socket" test -S "$work/haproxy.sock"
for n in "${hosts[@]}"; do wait_until 30 "HAProxy to mark host $n UP" status_is "$n" UP; done
curl -sf "http://127.0.0.1:$port/" >/dev/null

# load OUT: wrk through HAProxy, in slices back to back, until $work/stop appears.
load() {
  while [ ! -e "$work/stop" ]; do
    wrk -t2 -c$connections -d${slice}s --timeout 10s -s bench/fleet/status.lua "http://127.0.0.1:$port/" >>"$1" 2>&1 ||
      echo "FLEET requests=0 non2xx=0 connect=1 read=0 write=0 timeout=0 (wrk failed)" >>"$1"
  done
}
start_load() { rm -f "$work/stop"; load "$1" & load_pid=$!; }
stop_load() { touch "$work/stop"; wait "$load_pid"; load_pid=""; }
# tally OUT: "REQUESTS FAILED" over every slice of a phase.
tally() {
  awk '/^FLEET requests=/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "requests") r += kv[2]; else f += kv[2] } }
       END { print r + 0, f + 0 }' "$1"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
retries_before=$(backend_stat wretr) redispatches_before=$(backend_stat wredis)

# Phase 1: the rolling upgrade.
rows=()
start_load "$work/roll.wrk"
sleep $settle
for n in "${hosts[@]}"; do
  step=$(now)
  ctl "$n" drain >/dev/null
  wait_until 60 "HAProxy to mark drained host $n DOWN" status_is "$n" DOWN
  wait_until 60 "host $n's requests in flight to finish" in_flight_is_zero "$n"
  drained=$(since "$step")
  sent_before=$(hastat "$n" stot)
  old=$(children "${master[$n]}")
  upgrade_start=$(now)
  ctl "$n" upgrade >/dev/null
  wait_until 180 "host $n's upgrade (old workers gone, the new generation serving)" upgraded "$n" "$old"
  upgraded_in=$(since "$upgrade_start")
  sent_while_drained=$(($(hastat "$n" stot) - sent_before))
  ctl "$n" resume >/dev/null
  back=$(now)
  wait_until 60 "HAProxy to mark host $n UP again" status_is "$n" UP
  rows+=("| host$n | $drained | $upgraded_in | $(since "$back") | $sent_while_drained | $(since "$step") |")
  sleep $settle
done
stop_load
read -r roll_requests roll_failed < <(tally "$work/roll.wrk")
retries=$(($(backend_stat wretr) - retries_before)) redispatches=$(($(backend_stat wredis) - redispatches_before))

# Phase 2: one host's whole process tree killed, restarted once HAProxy has marked it DOWN (as a
# supervisor would restart it), while the load goes on.
retries_before=$(backend_stat wretr) redispatches_before=$(backend_stat wredis)
start_load "$work/kill.wrk"
sleep $settle
tree="${master[$victim]} $(children "${master[$victim]}")"
killed=$(now)
kill -KILL $tree 2>/dev/null || true # a pid gone meanwhile (a --check-config child) is no error
wait "${master[$victim]}" 2>/dev/null || true
wait_until 60 "HAProxy to mark host $victim DOWN" status_is "$victim" DOWN
down_after=$(since "$killed")
wait_until 10 "host $victim's processes to be gone" old_workers_gone "$tree"
restarted=$(now)
start_host "$victim"
wait_until 120 "HAProxy to mark host $victim UP after its restart" status_is "$victim" UP
up_after=$(since "$restarted")
sleep $settle
stop_load
read -r kill_requests kill_failed < <(tally "$work/kill.wrk")
kill_retries=$(($(backend_stat wretr) - retries_before)) kill_redispatches=$(($(backend_stat wredis) - redispatches_before))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

command="bench/fleet.sh$([ $quick = 1 ] && echo ' --quick' || true)"
out="bench/results/fleet-$(date +%F)-$(hostname).md"
[ $quick = 1 ] && out="$work/fleet-quick.md"
{
  echo "# A fleet behind HAProxy: rolling upgrade and host kill ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname))"
  echo
  echo "Command: \`$command\`. Three Prefork hosts (threads, 2 workers each, the sample app), each in its own"
  echo "network namespace, behind HAProxy $(haproxy -v | grep -oP 'version \K[\d.]+') (bench/fleet/haproxy.cfg: checks on /ready every 0.5 s, fall 2, rise 2;"
  echo "retries with redispatch). wrk -t2 -c$connections through HAProxy for the whole run, in ${slice} s slices."
  echo "Load average before: $load_before; after: $load_after."
  echo
  echo "## Rolling upgrade (\`prefork ctl drain\`, \`prefork ctl upgrade\`, \`prefork ctl resume\`)"
  echo
  echo "| host | drained in (s) | upgraded in (s) | UP again in (s) | requests it got while drained | step (s) |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "$roll_requests requests, $roll_failed failed (socket errors, timeouts, non-2xx); HAProxy retried $retries, redispatched $redispatches."
  echo
  echo "## Host kill (\`kill -9\` of host$victim's master and workers, restarted once HAProxy marked it DOWN)"
  echo
  echo "$kill_requests requests, $kill_failed failed; HAProxy retried $kill_retries, redispatched $kill_redispatches."
  echo "HAProxy marked it DOWN ${down_after} s after the kill, and UP ${up_after} s after its restart."
  echo
  echo "fleet: $roll_requests requests, $roll_failed failed"
} >"$out"
cat "$out"
[ "$roll_failed" = 0 ]
