# PostgreSQL 15 for the TechEmpower tests: a throwaway cluster in a temp dir, sourced by
# bench/techempower.sh (after its `set -euo pipefail`).
#
#   pg_start MAX_CONNECTIONS   initdb + pg_ctl start in a new temp dir; listens on a Unix socket in
#                              that dir and on 127.0.0.1:PG_PORT (a free port); creates the database
#                              hello_world with TechEmpower's World (10,000 rows) and Fortune (12 rows)
#                              tables. Sets PG_DIR, PG_PORT, PG_PID, PG_SOCKET_DIR, PG_BIN.
#   pg_stop                    fast shutdown (SIGINT) of the postmaster by pid, KILL after 30 s,
#                              then removes the dir. Safe to call twice; call it from an EXIT trap.
#   pg_psql ARGS...            psql as the superuser over the socket.
#   pg_conninfo, pg_npgsql     the connection string for libpq (psycopg2) and for Npgsql.
#
# initdb refuses to run as root: as root, the cluster belongs to the `postgres` user (Debian's
# postgresql package creates it), and every PostgreSQL command runs as that user with runuser.
# The settings follow TechEmpower's postgresql.conf where it matters on loopback (no fsync or
# synchronous commit: the tests only read), with max_connections sized by the caller for the run.

PG_DIR= PG_PORT= PG_PID= PG_SOCKET_DIR= PG_BIN=

# The directory of initdb/pg_ctl/postgres: Debian's versioned one, or PATH's.
pg_find_bin() {
  local dir
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { PG_BIN=$dir; return 0; }
  done
  command -v initdb >/dev/null && { PG_BIN=$(dirname "$(command -v initdb)"); return 0; }
  echo "PostgreSQL's initdb is not installed (apt-get install postgresql)" >&2
  return 1
}

# As root: run as the postgres user (initdb and postgres refuse root); otherwise as ourselves.
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_free_port() {
  local port
  for port in $(seq 15432 15532); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
  done
  echo "no free port in 15432-15532" >&2
  return 1
}

pg_psql() {
  pg_as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres "$@"
}

pg_start() { # max_connections
  local max_connections=$1
  pg_find_bin
  PG_DIR=$(mktemp -d /tmp/techempower-pg.XXXXXX)
  PG_SOCKET_DIR=$PG_DIR
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DIR"
  PG_PORT=$(pg_free_port)
  pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  # One line: pg_ctl pastes the options into a shell command, where a newline would end it.
  local options="-p $PG_PORT -k $PG_SOCKET_DIR -c listen_addresses=127.0.0.1 -c max_connections=$max_connections"
  options+=" -c shared_buffers=128MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  options+=" -c checkpoint_timeout=1h -c jit=off"
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start -o "$options" >/dev/null ||
    { cat "$PG_DIR/postgres.log" >&2; return 1; }
  read -r PG_PID <"$PG_DIR/data/postmaster.pid"
  pg_psql -d postgres <<'SQL'
CREATE USER benchmarkdbuser WITH PASSWORD 'benchmarkdbpass';
CREATE DATABASE hello_world OWNER benchmarkdbuser ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0;
SQL
  # TechEmpower's tables: World (10,000 random rows) and Fortune (12 rows).
  pg_as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U benchmarkdbuser -d hello_world \
    <"$(dirname "${BASH_SOURCE[0]}")/create-postgres.sql"
}

# Connection strings over the Unix socket: libpq's form (psycopg2) and ADO.NET's (Npgsql).
pg_conninfo() {
  echo "host=$PG_SOCKET_DIR port=$PG_PORT dbname=hello_world user=benchmarkdbuser password=benchmarkdbpass"
}
pg_npgsql() {
  echo "Host=$PG_SOCKET_DIR;Port=$PG_PORT;Database=hello_world;Username=benchmarkdbuser;Password=benchmarkdbpass"
}

pg_stop() {
  [ -n "$PG_PID" ] || return 0
  local pid=$PG_PID i
  PG_PID=
  kill -INT "$pid" 2>/dev/null || true # fast shutdown: clients disconnected, no wait for them
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "postgres (pid $pid) did not stop on INT within 30 s: KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
  PG_DIR=
}
