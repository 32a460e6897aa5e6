# The Glimpse image: every service and the pipeline CLI (the Argo steps run it too).
#   docker build -t glimpse .
#   docker run glimpse services/gateway/src/main.ts
# BASE is any image with Node 22 and npm; CI builds with a Debian-made base (scripts/cluster/images.sh):
#   buildah bud --build-arg BASE=docker-archive:node-base.tar -v /etc/ssl/certs:/etc/ssl/certs:ro \
#     --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt -t glimpse .
ARG BASE=node:22-bookworm-slim

FROM ${BASE} AS deps
# A CA bundle for npm behind a TLS-intercepting proxy; seen by RUN only, not kept in the image.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY packages packages
COPY services services
# onnxruntime-node's install script would download CUDA files; the CPU build ships in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --omit=dev --no-audit --no-fund && npm install --no-save tsx@4

FROM ${BASE}
WORKDIR /app
ENV NODE_ENV=production GLIMPSE_HOST=0.0.0.0
COPY --from=deps /app /app
COPY demo demo
COPY proto proto
RUN useradd --uid 10001 --create-home glimpse
USER 10001
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["services/gateway/src/main.ts"]
