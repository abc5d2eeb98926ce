#!/usr/bin/env bash
# The one test command (`npm test`): install what the tests need, then typecheck, lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm install --no-audit --no-fund
bash scripts/test-setup.sh
bash scripts/typecheck.sh
npx biome check .
npx vitest run "$@"
