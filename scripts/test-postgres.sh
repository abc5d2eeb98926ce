#!/usr/bin/env bash
# The PostgreSQL the tests and benchmarks use. Prints its admin URL on stdout (logs go to stderr).
#
# With TEST_DATABASE_URL set: that server as it is (a Docker pgvector container, a local install, a
# Neon branch); nothing is installed or changed. Otherwise the rig's own cluster: made with initdb on
# the first run, on the first free port from 5433, started when it is down, restarted only when its
# own settings below change. It never configures, starts or restarts a cluster it did not create.
# Root is needed only on Debian, once, to install PostgreSQL and pgvector with apt-get.
#
# `--replica` also makes (pg_basebackup, the first time) and starts a streaming replica of that server, a
# hot standby on the next free port, and prints the replica's URL instead; `--replica-stop` stops it
# (the replica suite starts it on demand, kit/replica.ts).
# `--clean` (npm run test:clean) stops and deletes the rig's cluster, its replica and its state.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test-postgres] %s\n' "$*" >&2; }
# Where neither way works: one paragraph saying why, what is needed and the two ways to provide it.
refuse() {
  { printf '\n%s\n' "$1"; cat kit/needs-postgres.txt; echo; } >&2
  exit 1
}
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

mode=${1:-}
case "$mode" in "" | --clean | --replica | --replica-stop) ;; *) log "unknown option $mode" && exit 2 ;; esac
if [ -n "${TEST_DATABASE_URL:-}" ] && [ -z "$mode" ]; then
  log "using TEST_DATABASE_URL as it is: nothing installed, no cluster of our own"
  # A quick check when psql is at hand; the suites' global setup checks again either way.
  if command -v psql >/dev/null; then
    v=$(PGCONNECT_TIMEOUT=3 psql "$TEST_DATABASE_URL" -XtAqc \
      "select default_version from pg_available_extensions where name = 'vector'" 2>&1) ||
      refuse "Cannot connect to TEST_DATABASE_URL: $(echo $v)."
    { [ -n "$v" ] && version_ge "$v" 0.8.0; } ||
      refuse "The server at TEST_DATABASE_URL has pgvector ${v:-not installed}; the tests need 0.8 or newer."
  fi
  printf '%s\n' "$TEST_DATABASE_URL"
  exit 0
fi

uid=$(id -u)
# The state file kit/postgres.ts reads when TEST_DATABASE_URL is unset.
state=${XDG_CACHE_HOME:-$HOME/.cache}/engram/test-postgres
mkdir -p "$state"
# One setup at a time per user (two `npm test`s starting together would race on initdb).
exec 9>"$state/lock"
if command -v flock >/dev/null; then flock 9; fi

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/initdb" ]; then echo "$d" && return; fi
  done
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir && return; fi
  if command -v initdb >/dev/null; then dirname "$(readlink -f "$(command -v initdb)")"; fi
}
bindir=$(find_bindir)

# initdb refuses to run as root: root's cluster belongs to the postgres OS user, in its home.
if [ "$uid" = 0 ]; then
  as_owner() { (cd / && runuser -u postgres -- "$@"); }
  home=$(getent passwd postgres 2>/dev/null | cut -d: -f6 || true)
  dir=${home:+$home/engram-test}
else
  as_owner() { "$@"; }
  dir=$state
fi
data=${dir:+$dir/data}
running() { [ -n "$data" ] && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }
# The replica's cluster, beside the primary's (as root, in the postgres user's home).
if [ "$uid" = 0 ]; then rdir=${home:+$home/engram-test-replica}; else rdir=$state/replica; fi
rdata=${rdir:+$rdir/data}
replica_running() { [ -n "$rdata" ] && [ -f "$rdata/PG_VERSION" ] && as_owner "$bindir/pg_ctl" -D "$rdata" status >/dev/null 2>&1; }
replica_stop() { if replica_running; then as_owner "$bindir/pg_ctl" -D "$rdata" -m fast -w stop >/dev/null; fi; }

# A hot standby of $1 (an admin URL), made with pg_basebackup and kept in $rdata; prints its URL.
replica_up() {
  local primary=$1 sysid have target rport url conf attempt copy logged
  [ -n "$bindir" ] && [ -x "$bindir/pg_basebackup" ] ||
    refuse "A streaming replica needs PostgreSQL's own binaries here (pg_basebackup, pg_ctl); none were found."
  local server_major
  server_major=$("$bindir/psql" "$primary" -XtAqc "select current_setting('server_version_num')::int / 10000")
  [ "$server_major" = "$("$bindir/pg_config" --version 2>/dev/null | awk '{ print $2 }' | cut -d. -f1)" ] ||
    refuse "The server is PostgreSQL $server_major; a replica needs binaries of the same major version (found $bindir)."
  # A replica of an earlier primary (deleted and made again since) cannot follow this one: it is made again.
  sysid=$("$bindir/psql" "$primary" -XtAqc "select system_identifier from pg_control_system()")
  if [ -f "$rdata/PG_VERSION" ]; then
    have=$(as_owner "$bindir/pg_controldata" "$rdata" | sed -n 's/^Database system identifier: *//p')
    if [ "$have" != "$sysid" ]; then
      log "the replica in $rdata follows another server: making it again"
      replica_stop && as_owner rm -rf "$rdata"
    fi
  fi
  for attempt in 1 2; do
    if [ ! -f "$rdata/PG_VERSION" ]; then
      log "making a streaming replica in $rdata (pg_basebackup of $(printf '%s' "$primary" | sed -E 's#://[^@/]*@#://#'))"
      as_owner mkdir -p "$rdir"
      # Retried: on a busy server (other suites dropping databases force checkpoints) PostgreSQL 15 has ended the
      # copy's WAL stream by invalidating its temporary slot.
      for copy in 1 2 3 0; do
        [ "$copy" != 0 ] || { cat "$state/basebackup.log" >&2; refuse "pg_basebackup could not copy the server (it must allow replication connections: wal_level replica, max_wal_senders, a pg_hba.conf replication entry)."; }
        as_owner "$bindir/pg_basebackup" -D "$rdata" -d "$primary" -X stream -R -c fast >"$state/basebackup.log" 2>&1 && break
        as_owner rm -rf "$rdata"
        log "pg_basebackup failed (attempt $copy): $(tail -n 1 "$state/basebackup.log")"
      done
      # Its own settings come last: the copied ones (port, shared_buffers) are the primary's.
      as_owner touch "$rdata/postgresql.conf"
      echo "include_if_exists = 'engram-replica.conf'" | as_owner tee -a "$rdata/postgresql.conf" >/dev/null
      [ -f "$rdata/pg_hba.conf" ] || printf 'host all all 127.0.0.1/32 trust\n' | as_owner tee "$rdata/pg_hba.conf" >/dev/null
    fi
    rport=$(sed -n 's/^port = \([0-9][0-9]*\)$/\1/p' "$rdata/engram-replica.conf" 2>/dev/null || true)
    if ! replica_running && { [ -z "$rport" ] || port_taken "$rport"; }; then
      rport=$(($(printf '%s' "$primary" | sed -nE 's#^[^/]*//([^@/]*@)?[^:/?]*:([0-9]+).*#\2#p' | grep . || echo 5432) + 1))
      while port_taken "$rport"; do rport=$((rport + 1)); done
    fi
    conf="# Written by scripts/test-postgres.sh --replica: a hot standby of the test cluster, for the replica suite.
port = $rport
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
hot_standby = on
# The primary keeps the rows a running search on the replica still reads: no query cancelled by replay.
hot_standby_feedback = on
shared_buffers = 256MB"
    if [ "$(cat "$rdata/engram-replica.conf" 2>/dev/null)" != "$conf" ]; then
      replica_stop
      printf '%s\n' "$conf" | as_owner tee "$rdata/engram-replica.conf" >/dev/null
    fi
    logged=$(as_owner stat -c %s "$rdir/postgres.log" 2>/dev/null || echo 0)
    if ! replica_running; then
      log "starting the replica on 127.0.0.1:$rport"
      as_owner "$bindir/pg_ctl" -D "$rdata" -l "$rdir/postgres.log" -w -t 120 start >/dev/null 9>&- ||
        { tail -n 20 "$rdir/postgres.log" >&2; exit 1; }
    fi
    url=$(printf '%s' "$primary" | sed -E "s#^(postgres(ql)?://([^@/]*@)?)[^/?]*#\\1127.0.0.1:$rport#")
    # Streaming, and caught up with what the primary had written when asked. Without a slot the primary may have
    # recycled the WAL a long-stopped replica still needed: that one is made again, once.
    target=$("$bindir/psql" "$primary" -XtAqc "select pg_current_wal_lsn()")
    for _ in $(seq 1 120); do
      if [ "$("$bindir/psql" "$url" -XtAqc "select coalesce(pg_last_wal_replay_lsn() >= '$target', false)" 2>/dev/null)" = t ]; then
        printf '%s\n' "$url" >"$state/replica-url"
        log "replica ready: $url (hot standby of the test server, streaming)"
        printf '%s\n' "$url"
        return 0
      fi
      if tail -c +$((logged + 1)) "$rdir/postgres.log" 2>/dev/null | grep -q "has already been removed"; then break; fi
      sleep 0.5
    done
    log "the replica did not catch up (see $rdir/postgres.log): making it again"
    replica_stop
    as_owner rm -rf "$rdata"
  done
  exit 1
}
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "$mode" = --replica-stop ]; then
  replica_stop
  log "the replica is stopped"
  exit 0
fi
if [ "$mode" = --clean ]; then
  if [ -n "$rdata" ] && [ -f "$rdata/engram-replica.conf" ]; then
    replica_stop
    as_owner rm -rf "$rdir"
    log "deleted the test replica in $rdir"
  fi
  # Only a data directory this script wrote its settings into is deleted.
  if [ -n "$data" ] && [ -f "$data/engram.conf" ]; then
    if [ -n "$bindir" ] && running; then as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
    as_owner rm -rf "$dir"
    log "deleted the test cluster in $dir"
  else
    log "no test cluster to delete"
  fi
  rm -rf "$state"
  exit 0
fi
if [ "$mode" = --replica ] && [ -n "${TEST_DATABASE_URL:-}" ]; then
  replica_up "$TEST_DATABASE_URL"
  exit 0
fi

debian() { [ -f /etc/debian_version ] && command -v apt-get >/dev/null; }
as_root() { if [ "$uid" = 0 ]; then "$@"; else sudo "$@"; fi; }
pg_config_of() { if [ -x "$bindir/pg_config" ]; then "$bindir/pg_config" "$@"; else pg_config "$@"; fi; }
vector_version() {
  sed -n "s/^default_version = '\(.*\)'$/\1/p" "$(pg_config_of --sharedir 2>/dev/null)/extension/vector.control" 2>/dev/null || true
}

# What has to be installed, decided (and said) before anything is done.
need_pg=; need_vector=
[ -n "$bindir" ] || need_pg=1
if [ -z "$need_pg" ]; then
  v=$(vector_version)
  { [ -n "$v" ] && version_ge "$v" 0.8.0; } || need_vector=1
fi
if [ -n "$need_pg$need_vector" ]; then
  what=${need_pg:+PostgreSQL 15 and pgvector}; what=${what:-pgvector 0.8 for PostgreSQL in $bindir}
  if ! debian; then refuse "No TEST_DATABASE_URL, and this machine lacks $what (installed automatically on Debian only)."; fi
  if [ "$uid" != 0 ] && ! command -v sudo >/dev/null; then
    refuse "No TEST_DATABASE_URL, and this machine lacks $what, which needs root to install once (no sudo here)."
  fi
  how=; [ "$uid" = 0 ] || how=" (through sudo)"
  log "installing $what with apt-get: a one-time step that needs root$how"
fi
if [ "$uid" = 0 ] && ! getent passwd postgres >/dev/null && [ -z "$need_pg" ]; then
  refuse "No TEST_DATABASE_URL; running as root, and there is no postgres OS user to own the test cluster (initdb refuses root)."
fi

if [ -n "$need_pg" ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
  bindir=$(find_bindir)
  home=$(getent passwd postgres | cut -d: -f6)
  [ "$uid" = 0 ] && dir=$home/engram-test && data=$dir/data
  need_vector=1
fi
major=$(pg_config_of --version | awk '{ print $2 }' | cut -d. -f1)

if [ -n "$need_vector" ]; then
  # Bookworm's pgvector is 0.5; trixie's source package is 0.8, built here against this PostgreSQL.
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
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-server-dev-$major" dpkg-dev make gcc >/dev/null
  build=$(mktemp -d)
  (
    cd "$build"
    apt-get source -qq pgvector >/dev/null 2>&1
    cd "$(find . -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
    make -s PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" OPTFLAGS="" >/dev/null
    as_root make -s PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" install >/dev/null
  )
  rm -rf "$build"
  log "pgvector $(vector_version) installed"
fi

if [ ! -f "$data/PG_VERSION" ]; then
  log "creating the test cluster in $data (initdb, as $(as_owner id -un))"
  as_owner mkdir -p "$dir"
  locale=C; if locale -a 2>/dev/null | grep -qiEx 'c\.utf-?8'; then locale=C.UTF-8; fi
  as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale="$locale" \
    --text-search-config=english >"$state/initdb.log" 2>&1 || { cat "$state/initdb.log" >&2; exit 1; }
  echo "include_if_exists = 'engram.conf'" | as_owner tee -a "$data/postgresql.conf" >/dev/null
elif [ "$(cat "$data/PG_VERSION")" != "$major" ]; then
  log "the test cluster in $data is PostgreSQL $(cat "$data/PG_VERSION"), the binaries are $major: run npm run test:clean"
  exit 1
fi

# Its port: the one it has, unless it is down and something else took it; else the first free from 5433.
port=$(sed -n 's/^port = \([0-9][0-9]*\)$/\1/p' "$data/engram.conf" 2>/dev/null || true)
if ! running && { [ -z "$port" ] || port_taken "$port"; }; then
  port=5433
  while port_taken "$port"; do port=$((port + 1)); done
fi

if [ -r /proc/meminfo ]; then mem_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo); else mem_kb=$(($(sysctl -n hw.memsize) / 1024)); fi
buffers_mb=$((mem_kb / 1024 / 4)); [ "$buffers_mb" -le 8192 ] || buffers_mb=8192
conf="# Written by scripts/test-postgres.sh on every run: Engram's test and benchmark cluster.
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = ''	# TCP only: no socket directory to own or share
# A quarter of RAM, up to 8 GB. At Debian's 128 MB the 100,000-chunk search benchmark's table and HNSW
# index did not fit and every search copied pages from the OS cache (exact scans 2x, HNSW several times slower).
shared_buffers = ${buffers_mb}MB
maintenance_work_mem = 1GB	# HNSW index builds
# A streaming replica can follow it (initdb's pg_hba.conf trusts replication from 127.0.0.1).
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
# WAL kept for it: other suites' dropped databases force checkpoints every few seconds, which recycled the WAL a
# fresh replica needed before it had started. 1 GB covers a replica's start and a stop of a few minutes.
wal_keep_size = 1GB
# fsync stays on: the benchmarks time real commits.
fsync = on"
changed=
if [ "$(cat "$data/engram.conf" 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" | as_owner tee "$data/engram.conf" >/dev/null
  changed=1
fi

# 9>&-: the server must not inherit the setup lock (it would hold it for as long as it runs).
pg_ctl() { as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 120 "$@" >/dev/null 9>&-; }
if running; then
  if [ -n "$changed" ]; then
    # Others may be using it: a reload when it suffices, a restart only when a setting the server reads at start
    # (shared_buffers, port, ...) now differs from what it runs with (the file's last entry for it not applied).
    needs_restart=$("$bindir/psql" "postgres://postgres@127.0.0.1:$port/postgres" -XtAqc "select coalesce(bool_or(not f.applied), false)
      from pg_file_settings f join pg_settings s using (name)
      where s.context = 'postmaster'
        and f.seqno = (select max(g.seqno) from pg_file_settings g where g.name = f.name)" 2>/dev/null || echo t)
    if [ "$needs_restart" = f ]; then
      log "its settings changed: reloading the test cluster"
      "$bindir/psql" "postgres://postgres@127.0.0.1:$port/postgres" -XtAqc "select pg_reload_conf()" >/dev/null
    else
      log "its settings changed: restarting the test cluster"
      pg_ctl -m fast restart
    fi
  fi
else
  log "starting the test cluster on 127.0.0.1:$port"
  pg_ctl start || { log "it did not start; the end of $dir/postgres.log:"; tail -n 20 "$dir/postgres.log" >&2; exit 1; }
fi

url="postgres://postgres@127.0.0.1:$port/postgres"
v=$("$bindir/psql" "$url" -XtAqc "select default_version from pg_available_extensions where name = 'vector'")
printf '%s\n' "$url" >"$state/url"
log "ready: $url (PostgreSQL $major, pgvector $v, shared_buffers ${buffers_mb} MB; the cluster in $data)"
if [ "$mode" = --replica ]; then replica_up "$url"; else printf '%s\n' "$url"; fi
