#!/usr/bin/env bash
# Start (or reuse) a local PostgreSQL server for the tests and print its DSN.
#
#   MPM_TEST_POSTGRES_DSN="$(scripts/start_postgres.sh)"
#
# Idempotent: installs the Debian `postgresql` package if no server binaries are found,
# starts a server on 127.0.0.1 if none is running (port 5432, or a free port when 5432 is
# taken by something else), and creates the login role `mpm` (password `mpm`, CREATEDB, so
# tests can make a fresh database each), the database `mpm` (checkpoints) and the database
# `mlflow` (the README's PostgreSQL MLflow recipe) if they are missing.
# Only the DSN goes to stdout; progress goes to stderr; nothing is exported.
#
# As root it uses the Debian cluster `<version>/main` (pg_ctlcluster); as any other user it
# runs a private cluster in $MPM_PG_DIR (default ~/.cache/mpm-postgres) with pg_ctl.
set -euo pipefail

ROLE=mpm
PASSWORD=mpm
DATABASE=mpm
MLFLOW_DATABASE=mlflow

log() { echo "start_postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local port
  for port in 5432 $(seq 55432 55532); do
    if ! port_in_use "$port"; then echo "$port"; return 0; fi
  done
  die "no free TCP port found on 127.0.0.1 (tried 5432 and 55432-55532)"
}

latest_version() { ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1; }

# -- 1. server binaries -----------------------------------------------------------------
if [ -z "$(latest_version)" ] || [ ! -x "/usr/lib/postgresql/$(latest_version)/bin/pg_ctl" ]; then
  log "installing the postgresql Debian package"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    die "PostgreSQL is not installed and this user cannot run apt-get; install it with: apt-get install -y postgresql"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq postgresql >&2
fi
VERSION="$(latest_version)"
BIN="/usr/lib/postgresql/$VERSION/bin"

# -- 2. a running server, and a way to run SQL as its superuser --------------------------
if [ "$(id -u)" = 0 ]; then
  CLUSTER=main
  if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {f=1} END {exit !f}'; then
    log "creating cluster $VERSION/$CLUSTER"
    pg_createcluster "$VERSION" "$CLUSTER" -p "$(free_port)" >&2
  fi
  status() { pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}'; }
  PORT="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $3}')"
  if [ "$(status)" != "online" ]; then
    if port_in_use "$PORT"; then
      PORT="$(free_port)"
      log "port of cluster $VERSION/$CLUSTER is taken; moving it to $PORT"
      pg_conftool "$VERSION" "$CLUSTER" set port "$PORT"
    fi
    pg_conftool "$VERSION" "$CLUSTER" set listen_addresses 'localhost'
    log "starting cluster $VERSION/$CLUSTER on 127.0.0.1:$PORT"
    pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
  fi
  [ "$(status)" = "online" ] || die "cluster $VERSION/$CLUSTER did not start; see /var/log/postgresql/"
  SOCKET_DIR=/var/run/postgresql
  as_superuser() { runuser -u postgres -- "$BIN/psql" -h "$SOCKET_DIR" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
else
  DATA="${MPM_PG_DIR:-$HOME/.cache/mpm-postgres}/$VERSION"
  if [ ! -s "$DATA/PG_VERSION" ]; then
    log "initialising a private cluster in $DATA"
    mkdir -p "$DATA"
    "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 >&2
  fi
  if ! "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    PORT="$(free_port)"
    log "starting the private cluster on 127.0.0.1:$PORT"
    "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
      -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1" start >&2 \
      || die "the server did not start; see $DATA/server.log"
  fi
  PORT="$(sed -n 4p "$DATA/postmaster.pid")"
  SOCKET_DIR="$DATA"
  as_superuser() { "$BIN/psql" -h "$SOCKET_DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
fi

# -- 3. role and database ----------------------------------------------------------------
for _ in $(seq 1 30); do
  "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
  sleep 1
done
"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || die "server on 127.0.0.1:$PORT is not accepting connections"

if [ "$(as_superuser -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
  log "creating role $ROLE"
  as_superuser -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
elif [ "$(as_superuser -c "SELECT rolcanlogin AND rolcreatedb FROM pg_roles WHERE rolname = '$ROLE'")" != t ]; then
  log "letting role $ROLE log in and create databases"
  as_superuser -c "ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
fi
for db in "$DATABASE" "$MLFLOW_DATABASE"; do
  if [ "$(as_superuser -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    log "creating database $db"
    as_superuser -c "CREATE DATABASE $db OWNER $ROLE"
  fi
done

echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
