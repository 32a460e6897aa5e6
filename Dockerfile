# The Glimpse image: every service and the pipeline CLI (the Argo steps run it too), as compiled
# JavaScript with production dependencies only: no TypeScript, no test code, no TypeScript runner.
#   docker build -t glimpse .
#   docker run glimpse services/gateway/dist/main.js
# BASE is any image with Node 22 and npm; CI builds with a Debian-made base (scripts/cluster/images.sh):
#   buildah bud --build-arg BASE=docker-archive:node-base.tar -v /etc/ssl/certs:/etc/ssl/certs:ro \
#     --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt -t glimpse .
ARG BASE=node:22-bookworm-slim

# The stage that reaches the package registry is named `deps`: scripts/cluster/images.sh builds it under that
# name so a rebuild of the same sources (Tilt's, where no registry is reachable) finds it in the layer cache.
FROM ${BASE} AS deps
# A CA bundle for npm behind a TLS-intercepting proxy; seen by RUN only, not kept in the image.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json tsconfig.build.json ./
COPY packages packages
COPY services services
# onnxruntime-node's install script would download CUDA files (the CPU build ships in the package),
# @scarf/scarf's (swagger-ui-dist's) would report the install: package.json's allowScripts denies
# both from npm 11.16; the base image's npm 10 reads these instead.
ENV ONNXRUNTIME_NODE_INSTALL=skip SCARF_ANALYTICS=false
# Compile with the locked dev dependencies (TypeScript), then keep only what production runs: the
# production dependencies, and of each workspace its package.json, dist/ (less type declarations
# and maps) and bin/.
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && find packages services -mindepth 2 -maxdepth 2 ! -name dist ! -name bin ! -name package.json -exec rm -rf {} + \
 && find packages services \( -name '*.d.ts' -o -name '*.map' -o -name '.tsbuildinfo' \) -delete \
 && rm -rf tsconfig.base.json tsconfig.build.json /root/.npm

FROM ${BASE}
WORKDIR /app
# A fixed malloc mmap threshold: memory a model swap frees goes back to the system (glibc's
# dynamic threshold kept ~150 MiB resident per swap; services/ranking/src/lifecycle/memory.ts).
ENV NODE_ENV=production GLIMPSE_HOST=0.0.0.0 MALLOC_MMAP_THRESHOLD_=131072
COPY --from=deps /app /app
COPY demo demo
COPY proto proto
RUN useradd --uid 10001 --create-home glimpse
USER 10001
ENTRYPOINT ["node"]
CMD ["services/gateway/dist/main.js"]
