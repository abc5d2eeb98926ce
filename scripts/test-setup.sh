#!/usr/bin/env bash
# What the test suite needs, made present: a PostgreSQL with pgvector >= 0.8 (scripts/test-postgres.sh:
# TEST_DATABASE_URL, or the rig's own cluster) and Chromium for the console's browser tests.
# Prints the server's admin URL on stdout, for TEST_DATABASE_URL. Idempotent: well under a second
# when everything is there. Root only on Debian, once, for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test-setup] %s\n' "$*" >&2; }

url=$(bash scripts/test-postgres.sh)

# The console's browser tests drive Debian's Chromium through playwright-core (test/e2e).
if [ ! -x /usr/bin/chromium ]; then
  if [ -f /etc/debian_version ] && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }; then
    as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    log "installing Chromium with apt-get for the console's browser tests: a one-time step that needs root"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "no Chromium at /usr/bin/chromium: the console's browser tests (test/e2e) will fail here"
  fi
fi
if [ -x /usr/bin/chromium ]; then log "ready: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"; fi
printf '%s\n' "$url"
