#!/usr/bin/env bash
# Type-checks the project and the console, then sst.config.ts and infra/ (strict, like the rest)
# against SST's real platform types. Fails on any error, configuration-level ones included (an
# unknown compiler option, a missing file), with one exception: SST's platform sources
# (.sst/platform/src, which `sst install` writes and we never edit) carry type errors of their
# own under our TypeScript and Pulumi versions; those are counted and named, not fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit
npx tsc --noEmit -p console/tsconfig.json
if [ ! -f .sst/platform/config.d.ts ]; then
  # On a fresh checkout `sst install` prints "Unexpected error occurred" (it first looks for the platform version it
  # is about to write) and goes on to install: its output is shown only when it fails.
  log=$(mktemp)
  if ! SST_STAGE=${SST_STAGE:-ci} SST_SKIP_DEPENDENCY_CHECK=1 SST_NO_BUN=1 SST_TELEMETRY_DISABLED=1 npx sst install >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
fi
status=0
output=$(npx tsc --noEmit -p tsconfig.sst.json 2>&1) || status=$?
# Every diagnostic starts a line with "file(line,col): error" or, for the configuration, "error TS".
ours=$(printf '%s\n' "$output" | grep -E '^(error TS|[^ ].*\([0-9]+,[0-9]+\): error TS)' | grep -v '^\.sst/platform/' || true)
if [ -n "$ours" ]; then
  printf '%s\n' "$output" | grep -v '^\.sst/platform/' | grep -E -A3 '^(error TS|[^ ].*: error TS)'
  exit 1
fi
# tsc failing with no diagnostic of ours and none of SST's would be a failure we cannot see.
theirs=$(printf '%s\n' "$output" | grep -cE '^\.sst/platform/.*: error TS' || true)
if [ "$status" -ne 0 ] && [ "$theirs" -eq 0 ]; then
  printf '%s\n' "$output"
  exit 1
fi
echo "typecheck: ok (project, console, sst.config.ts, infra/; ${theirs} errors inside SST's own platform sources ignored)"
