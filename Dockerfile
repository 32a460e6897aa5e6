# The Glimpse image: every service and the pipeline CLI (the Argo steps run it too).
#   docker build -t glimpse .
#   docker run glimpse services/gateway/src/main.ts
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages packages
COPY services services
# onnxruntime-node's install script would download CUDA files; the CPU build ships in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --omit=dev --no-audit --no-fund && npm install --no-save tsx@4

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production GLIMPSE_HOST=0.0.0.0
COPY --from=deps /app /app
COPY demo demo
COPY proto proto
RUN useradd --uid 10001 --create-home glimpse
USER 10001
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["services/gateway/src/main.ts"]
