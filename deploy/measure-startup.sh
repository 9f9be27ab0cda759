#!/usr/bin/env bash
# Start-up and memory of a published prefork: time from exec to the first 200 response, and the
# resident memory (VmRSS) of the master and its workers once all have booted. Median of N runs.
#   deploy/measure-startup.sh DIR [WORKERS] [RUNS]     e.g. deploy/measure-startup.sh /opt/prefork 2 7
# DIR holds a publish of src/Prefork.Cli (self-contained or not). Uses 127.0.0.1 only.
set -euo pipefail
dir=$(cd "$1" && pwd); workers=${2:-2}; runs=${3:-7}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18999)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
printf 'bind = ["127.0.0.1:%s"]\nworkers = %s\nloglevel = "info"\n' "$port" "$workers" > "$work/gateway.toml"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
firsts=(); totals=(); masters=(); workers_rss=()
for ((i = 0; i < runs; i++)); do
  start=$(date +%s%N)
  "$dir/prefork" -c "$work/gateway.toml" > "$work/log" 2>&1 &
  pid=$!
  for ((t = 0; t < 600; t++)); do   # at most 30 s
    curl -fs -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.05
  done
  first=$(( ($(date +%s%N) - start) / 1000000 ))
  for ((t = 0; t < 600; t++)); do grep -q "Ready:" "$work/log" && break; sleep 0.05; done
  curl -fs -o /dev/null "http://127.0.0.1:$port/"  # every worker has served something by now, or soon
  sleep 1
  m=$(rss_kb "$pid"); w=0
  for c in $(cat /proc/$pid/task/*/children 2>/dev/null); do w=$(( w + $(rss_kb "$c") )); done
  kill -TERM "$pid"; wait "$pid" || true
  firsts+=("$first"); masters+=("$m"); workers_rss+=("$w"); totals+=($(( m + w )))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "$dir: first response $(median "${firsts[@]}") ms (runs: ${firsts[*]}); RSS master $(( $(median "${masters[@]}") / 1024 )) MiB, $workers workers $(( $(median "${workers_rss[@]}") / 1024 )) MiB, total $(( $(median "${totals[@]}") / 1024 )) MiB"
