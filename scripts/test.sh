#!/usr/bin/env bash
# The test command (`npm test`): every check CI makes, in the order a failure is cheapest to find.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-tools.sh   # real MinIO and grpcurl, built once into .tools/

echo "== proto: buf lint, format, breaking, generated code up to date"
npx buf lint
npx buf format --diff --exit-code
bash scripts/check-proto.sh

echo "== typecheck"
npx tsc -p tsconfig.json --noEmit

echo "== TypeScript tests (vitest)"
npx vitest run

if [ -f model/pyproject.toml ]; then
  echo "== model tests (pytest)"
  (cd model && uv run --frozen pytest -q)
fi
