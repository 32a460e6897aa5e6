#!/usr/bin/env bash
# The test command (`npm test`): every check CI makes, in the order a failure is cheapest to find.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-tools.sh   # real MinIO, grpcurl and helm, built once into .tools/

# uv runs the model's tests; Debian's Chromium the search-page test.
command -v uv >/dev/null || python3 -m pip install --quiet uv
if ! command -v chromium >/dev/null && [ -z "${GLIMPSE_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the browser test needs Chromium: sudo apt-get install chromium (or set GLIMPSE_CHROMIUM)" >&2
    exit 1
  fi
fi

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
