#!/usr/bin/env bash
# By hand, as root on Debian: checks that the test rig (scripts/test-postgres.sh) keeps its promises.
# - Setting up twice leaves the PostgreSQL on HOST_PORT (default 5432) as it was: same settings, not
#   restarted; the second run is fast.
# - With TEST_DATABASE_URL it uses that server and touches no state of its own.
# - A user without root, with no PostgreSQL binaries, gets the one-paragraph refusal within a second.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (it hides the PostgreSQL binaries in a private mount namespace)" >&2; exit 2; }

host="postgres://postgres@127.0.0.1:${HOST_PORT:-5432}/postgres"
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
seconds() { local t0; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; echo $((($(date +%s%N) - t0) / 1000000)); }
snapshot() {
  psql "$host" -XtAc "select name, setting from pg_settings order by 1" | md5sum
  psql "$host" -XtAc "select pg_postmaster_start_time()"
}

before=$(snapshot)
url=$(bash scripts/test-setup.sh 2>/dev/null)
ms=$(seconds bash scripts/test-setup.sh)
[ "$(snapshot)" = "$before" ] || fail "the PostgreSQL at $host changed or restarted"
ok "$host unchanged and not restarted; the rig is $url, its second setup took $ms ms"
[ "$ms" -lt 2000 ] || fail "a setup with everything in place took $ms ms"

state=${XDG_CACHE_HOME:-$HOME/.cache}/engram/test-postgres/url
stamp=$(stat -c %Y "$state")
sleep 1
[ "$(TEST_DATABASE_URL=$host bash scripts/test-setup.sh 2>/dev/null)" = "$host" ] || fail "TEST_DATABASE_URL was not used"
[ "$(stat -c %Y "$state")" = "$stamp" ] || fail "TEST_DATABASE_URL still touched the rig's state"
ok "TEST_DATABASE_URL=$host used as it is"

home=$(mktemp -d)
chown nobody "$home"
out=$(mktemp)
t0=$(date +%s%N)
unshare -m sh -c "mount -t tmpfs none /usr/lib/postgresql && cd / &&
  runuser -u nobody -- env -i HOME=$home PATH=/usr/bin:/bin bash $PWD/scripts/test-setup.sh" >"$out" 2>&1 && fail "no refusal"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5433/postgres npm test" "$out" || fail "refusal without the guidance: $(cat "$out")"
rm -rf "$home" "$out"
[ "$ms" -lt 1000 ] || fail "the refusal took $ms ms"
ok "without root or PostgreSQL binaries: the refusal in $ms ms"
