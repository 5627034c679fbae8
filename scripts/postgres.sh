#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests, benchmarks and the Marquez server.
#
#   scripts/postgres.sh start   # install (Debian package) if missing, initdb, start; idempotent
#   scripts/postgres.sh stop    # stop the cluster this script started
#   scripts/postgres.sh status  # exit 0 when it accepts connections
#   scripts/postgres.sh dsn     # print the DSN tests use
#
# The cluster listens on 127.0.0.1 only, runs as the unprivileged 'postgres' user (initdb
# refuses root) and trusts local connections: it holds test data only.
set -euo pipefail

PORT="${LINEAGE_AUDIT_PG_PORT:-55432}"
DATA="${LINEAGE_AUDIT_PG_DIR:-/tmp/lineage-audit-pg}"
RUN_AS="${LINEAGE_AUDIT_PG_USER:-postgres}"

pg_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" = "0" ]; then
    runuser -u "$RUN_AS" -- "$@"
  else
    "$@"
  fi
}

install_if_missing() {
  if [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ]; then return 0; fi
  if [ "$(id -u)" != "0" ]; then
    echo "postgres.sh: PostgreSQL server binaries are missing; run as root to install the Debian package 'postgresql'" >&2
    exit 1
  fi
  echo "postgres.sh: installing PostgreSQL from Debian's packages..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  # The package starts its own cluster on 5432; we use ours, so leave that one alone.
}

dsn() { echo "postgresql://postgres@127.0.0.1:${PORT}/postgres"; }

is_up() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PORT" >/dev/null 2>&1; }

start() {
  install_if_missing
  local bin; bin=$(pg_bin)
  if is_up; then dsn; return 0; fi
  if [ "$(id -u)" = "0" ]; then
    id "$RUN_AS" >/dev/null 2>&1 || useradd --system --home-dir "$DATA" --shell /bin/bash "$RUN_AS"
    mkdir -p "$DATA"; chown "$RUN_AS" "$DATA"
  else
    mkdir -p "$DATA"
  fi
  if [ ! -f "$DATA/pgdata/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$DATA/pgdata" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$DATA/initdb.log" 2>&1 \
      || { echo "postgres.sh: initdb failed, see $DATA/initdb.log" >&2; cat "$DATA/initdb.log" >&2; exit 1; }
  fi
  as_owner "$bin/pg_ctl" -D "$DATA/pgdata" -l "$DATA/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { echo "postgres.sh: server did not start, log follows" >&2; tail -n 30 "$DATA/server.log" >&2; exit 1; }
  dsn
}

stop() {
  local bin; bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$DATA/pgdata/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$DATA/pgdata" -m fast -w stop >/dev/null || true
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) is_up ;;
  dsn) dsn ;;
  *) echo "usage: $0 start|stop|status|dsn" >&2; exit 2 ;;
esac
