#!/usr/bin/env bash
# The one test command (`npm test`): install what the tests need, then typecheck, lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm install --no-audit --no-fund
# The server's admin URL (TEST_DATABASE_URL as given, or the rig's own cluster), for the suites.
url=$(bash scripts/test-setup.sh)
export TEST_DATABASE_URL=$url
bash scripts/typecheck.sh
npx biome check .
npx vitest run "$@"
