#!/usr/bin/env bash
# Type-checks the project, then sst.config.ts and infra/ against SST's real platform types.
# SST's platform sources (.sst/platform/src) carry type errors of their own under this
# TypeScript version; only errors in our files count.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit
npx tsc --noEmit -p console/tsconfig.json
if [ ! -f .sst/platform/config.d.ts ]; then
  SST_STAGE=${SST_STAGE:-ci} SST_SKIP_DEPENDENCY_CHECK=1 SST_NO_BUN=1 SST_TELEMETRY_DISABLED=1 npx sst install >/dev/null
fi
ours=$(npx tsc --noEmit -p tsconfig.sst.json 2>&1 | grep -E '^(sst\.config\.ts|infra/)' -A3 || true)
if [ -n "$ours" ]; then
  echo "$ours"
  exit 1
fi
echo "typecheck: ok (project, sst.config.ts, infra/)"
