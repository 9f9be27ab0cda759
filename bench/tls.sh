#!/usr/bin/env bash
# HTTPS side by side: Prefork's three classes, Kestrel (UseHttps through its config, same
# certificate), nginx (ssl) and Gunicorn (--certfile), each serving hello world on 127.0.0.1.
# Two figures each: keep-alive requests/s (wrk, 50 connections), and new handshakes/s (wrk with
# "Connection: close": every request a new TCP connection and a full TLS handshake).
#   bench/tls.sh [SECONDS]        short runs by default (the machine may be shared)
# Writes bench/results/tls-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds=${1:-3}
work=bench/.work/tls
mkdir -p "$work" bench/results
need wrk openssl nginx gunicorn
build_prefork
dotnet publish bench/kestrel/KestrelBench.csproj -c Release -o "$work/kestrel" --nologo -v q >"$work/build-kestrel.log" 2>&1

# One certificate for all: ECDSA P-256, the usual modern choice.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$work/server.key" -out "$work/server.pem" 2>/dev/null
cert=$PWD/$work/server.pem key=$PWD/$work/server.key
workers=$(nproc)

rows=()
measure() { # name port
  local keepalive handshakes
  keepalive=$(wrk -t2 -c50 -d"${seconds}s" "https://127.0.0.1:$2/" | grep -oP 'Requests/sec:\s*\K[\d.]+')
  handshakes=$(wrk -t2 -c8 -d"${seconds}s" -H "Connection: close" "https://127.0.0.1:$2/" | grep -oP 'Requests/sec:\s*\K[\d.]+')
  rows+=("| $1 | $keepalive | $handshakes |")
  echo "$1: keep-alive $keepalive req/s, new handshakes $handshakes /s" >&2
}
stop() { kill -TERM "$1"; wait "$1" || true; }

port=18480
for class in sync threads epoll; do
  port=$((port + 1))
  $prefork -c gateway.toml -b "127.0.0.1:$port" -w "$workers" -k "$class" --threads 4 --certfile "$cert" --keyfile "$key" \
    --log-level warning > "$work/prefork-$class.log" 2>&1 &
  pid=$!; wait_for $port https
  measure "Prefork $class ($workers workers)" $port
  stop $pid
done

port=$((port + 1))
Kestrel__Certificates__Default__Path=$cert Kestrel__Certificates__Default__KeyPath=$key Logging__LogLevel__Default=Warning \
  "$work/kestrel/KestrelBench" --urls "https://127.0.0.1:$port" > "$work/kestrel.log" 2>&1 &
pid=$!; wait_for $port https
measure "Kestrel UseHttps (1 process)" $port
stop $pid

port=$((port + 1))
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes $workers;
pid $PWD/$work/nginx/nginx.pid;
error_log $PWD/$work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    location / { return 200 "Hello, World!"; }
  }
}
CONF
nginx -p "$PWD/$work/nginx" -e "$PWD/$work/nginx/error.log" -c "$PWD/$work/nginx/nginx.conf" -g "daemon off;" &
pid=$!; wait_for $port https
measure "nginx ssl ($workers workers, return 200)" $port
stop $pid

port=$((port + 1))
gunicorn --chdir bench/apps -b "127.0.0.1:$port" -k gthread --threads 4 -w "$workers" --certfile "$cert" --keyfile "$key" \
  --log-level warning wsgi_app:app > "$work/gunicorn.log" 2>&1 &
pid=$!; wait_for $port https
measure "Gunicorn gthread ($workers workers, 4 threads)" $port
stop $pid

out="bench/results/tls-$(date +%F)-$(hostname).md"
{
  echo "# HTTPS: keep-alive requests/s and new handshakes/s ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname))"
  echo
  echo "Hello world over TLS on 127.0.0.1, one ECDSA P-256 certificate for all. Keep-alive: \`wrk -t2 -c50 -d${seconds}s\`."
  echo "New handshakes: \`wrk -t2 -c8 -d${seconds}s -H 'Connection: close'\` (each request a new connection and full handshake)."
  echo "Command: \`bench/tls.sh $seconds\`. Short runs on a shared machine: read the ratios, not the absolute figures."
  echo
  echo "| server | keep-alive req/s | new handshakes/s |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
