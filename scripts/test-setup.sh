#!/usr/bin/env bash
# Makes sure the real services the test suite needs are present and running:
# PostgreSQL 15 on 127.0.0.1:5432 with pgvector >= 0.8, and a fresh test database.
# Idempotent: a few seconds when everything is already there.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
TEST_DB=${ENGRAM_TEST_DB:-engram_test}
export PGHOST PGPORT PGUSER

log() { printf '[test-setup] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }

if ! command -v pg_isready >/dev/null; then
  log "installing PostgreSQL 15 from Debian"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi

if ! pg_up; then
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { log "PostgreSQL did not start on $PGHOST:$PGPORT"; exit 1; }
fi

have_vector() {
  psql -XtAq -d postgres -c "select default_version from pg_available_extensions where name='vector'" 2>/dev/null
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

v=$(have_vector || true)
if [ -z "$v" ] || ! version_ge "$v" "0.8.0"; then
  log "pgvector missing (found '${v:-none}'): building it from Debian's newer source package"
  pgmajor=$(psql -XtAq -d postgres -c "show server_version_num" | cut -c1-2)
  src=/etc/apt/sources.list.d/engram-pgvector-src.sources
  if [ ! -f "$src" ]; then
    as_root tee "$src" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-server-dev-$pgmajor" dpkg-dev make gcc >/dev/null
  build=$(mktemp -d)
  (
    cd "$build"
    apt-get source -qq pgvector >/dev/null 2>&1
    cd "$(find . -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
    make -s PG_CONFIG="/usr/lib/postgresql/$pgmajor/bin/pg_config" OPTFLAGS="" >/dev/null
    as_root make -s PG_CONFIG="/usr/lib/postgresql/$pgmajor/bin/pg_config" install >/dev/null
  )
  rm -rf "$build"
  v=$(have_vector)
  log "pgvector $v installed"
fi

# Shared buffers: Debian's default of 128 MB holds a sixth of the 100,000-chunk benchmark's table and HNSW
# index, so every search copied pages in from the OS cache (measured: exact scans 2x slower, HNSW several
# times). A quarter of RAM, up to 8 GB, is the usual setting for a database server (Neon sizes its own).
want_mb=$(awk '/MemTotal/ { mb = int($2 / 1024 / 4); print (mb > 8192 ? 8192 : mb) }' /proc/meminfo)
have_mb=$(psql -XtAq -d postgres -c "select setting::bigint * 8 / 1024 from pg_settings where name = 'shared_buffers'")
if [ "$have_mb" -lt "$want_mb" ]; then
  log "shared_buffers ${have_mb} MB -> ${want_mb} MB (restarting PostgreSQL)"
  psql -XtAq -d postgres -c "alter system set shared_buffers = '${want_mb}MB'" >/dev/null
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main restart
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { log "PostgreSQL did not come back on $PGHOST:$PGPORT"; exit 1; }
fi

# A fresh test database each run: the suites reset their own schemas inside it.
PGOPTIONS="-c client_min_messages=warning" psql -Xq -d postgres -c "drop database if exists \"$TEST_DB\" with (force)" >/dev/null
psql -Xq -d postgres -c "create database \"$TEST_DB\"" >/dev/null
psql -Xq -d "$TEST_DB" -c "create extension if not exists vector" >/dev/null
log "ready: postgres://$PGUSER@$PGHOST:$PGPORT/$TEST_DB with pgvector $v"

# The console's browser tests drive Debian's Chromium through playwright-core (test/e2e).
if [ ! -x /usr/bin/chromium ]; then
  log "installing Chromium from Debian (console browser tests)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
log "ready: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
