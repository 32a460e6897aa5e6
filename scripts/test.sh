#!/usr/bin/env bash
# The test command (`npm test`): every check CI makes, in the order a failure is cheapest to find.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node 22+: `npm test` may have been started by an older node's npm; this puts Node 22 (from
# .tools/node, installed once if needed) first on PATH, so every step below (npx, tsc, vitest,
# the services they start) runs on it. Fails with a message when no Node 22 can be had.
source scripts/node.sh || { echo "npm test needs Node.js 22+ (see README.md)" >&2; exit 1; }
echo "== node $(node --version)"

# Cached images of earlier commits (the Kubernetes stage's, outside the checkout) go first: they grow by ~3 GB a
# commit, and on a nearly full disk MinIO refuses every write the tests make.
bash scripts/cluster/prune.sh
bash scripts/install-tools.sh   # real MinIO, grpcurl, helm and the OpenAPI plugin, built once into .tools/

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

echo "== build (dist/, what npm start, the image and the Argo steps run; packages/cli/src/dist.test.ts starts it)"
npm run build

echo "== TypeScript tests (vitest)"
npx vitest run

if [ -f model/pyproject.toml ]; then
  echo "== model tests (pytest)"
  (cd model && uv run --frozen pytest -q)
fi

echo "== Python client tests and the OpenAPI property test (pytest against the compiled mesh, which they start)"
(cd clients/python && uv run --frozen pytest -q)

echo "== Go client tests (go test against the compiled mesh, which they start)"
(cd clients/go && go test ./...)

echo "== Kubernetes end to end (e2e/k8s: the chart, Argo pipeline, training Jobs and Tilt on a real cluster)"
# The node evicts pods when its disk has under 1 % free (../shared/kubernetes/NOTES.md): say what there is.
df -h . | awk 'NR == 2 { print "disk: " $4 " free of " $2 }'
bash scripts/cluster/test.sh
