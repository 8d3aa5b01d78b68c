#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests, from Debian's packages, with its
# data directory under .build/pg and listening on loopback only.
#   scripts/postgres.sh start   install (apt) when missing, initdb once, start; prints the URL
#   scripts/postgres.sh stop    stop it (the data directory stays for the next run)
#   scripts/postgres.sh url     print the connection URL of the running server
#   scripts/postgres.sh status  "running" on VETO_PG_PORT (exit 0) or "stopped" (exit 3)
# The URL is also written to .build/pg/url for the test run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD/.build/pg
DATA=$ROOT/data
RUN=$ROOT/run
PORT=${VETO_PG_PORT:-54329}
URL="postgres://veto@127.0.0.1:$PORT/veto"

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

ensure_installed() {
  if [ -z "$(pg_bin)" ]; then
    echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
  fi
  [ -n "$(pg_bin)" ] || { echo "postgres.sh: PostgreSQL is not installed" >&2; exit 1; }
}

# initdb and postgres refuse to run as root: as root, run them as the
# 'postgres' user that Debian's package creates.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  ensure_installed
  local bin; bin=$(pg_bin)
  mkdir -p "$ROOT" "$RUN"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$ROOT" "$RUN"
    # The postgres user must be able to reach the data directory: give every
    # folder above it that it cannot pass through (a clone in a mktemp -d
    # folder, mode 700) search permission only (o+x: no listing, no reading).
    local dir=$ROOT
    while [ "$dir" != "/" ] && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; do
      dir=$(dirname "$dir")
      chmod o+x "$dir" 2>/dev/null || true
    done
  fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$DATA" -U veto --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    local port; port=$(server_port)
    if [ "$port" != "$PORT" ]; then
      echo "postgres.sh: the server of $DATA listens on port $port, not $PORT (VETO_PG_PORT): stop it first (VETO_PG_PORT=$port scripts/postgres.sh stop) or use that port" >&2
      exit 1
    fi
  else
    as_owner "$bin/pg_ctl" -D "$DATA" -l "$ROOT/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $RUN -c fsync=on -c max_connections=200" start >/dev/null
  fi
  if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$PORT" -U veto -d postgres -tAc "select 1 from pg_database where datname='veto'" | grep -q 1; then
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U veto veto
  fi
  echo "$URL" > "$ROOT/url"
  echo "$URL"
}

stop() {
  local bin; bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$DATA/PG_VERSION" ]; then
    as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -f "$ROOT/url"
}

# The port the running server of $DATA listens on (line 4 of postmaster.pid).
server_port() {
  sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true
}

# Running, and on this PORT: a server of the same data directory on another
# port is not the one a URL with this port reaches.
running() {
  local bin; bin=$(pg_bin)
  [ -n "$bin" ] && [ -f "$DATA/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1 \
    && [ "$(server_port)" = "$PORT" ]
}

case "${1:-}" in
  start) start ;;
  status) running && echo running || { echo stopped; exit 3; } ;;
  stop) stop ;;
  url) cat "$ROOT/url" ;;
  *) echo "usage: scripts/postgres.sh start|stop|status|url" >&2; exit 2 ;;
esac
