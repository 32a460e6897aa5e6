import { setMaxListeners } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { cors as connectCors } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ServiceName } from "@glimpse/api";
import { createLogger, REQUEST_ID_HEADER, type Logger } from "@glimpse/logging";
import { HealthRegistry, Metrics, ServingStatus, drain, handleRest, listen, observe, routesFor, sendJson, writeHead, type Handler } from "@glimpse/rpc";
import { apiKeysFromConfig, caFromConfig, tlsFromConfig, type GlimpseConfig } from "@glimpse/runtime";
import { checkBackends, connectBackends, type Backend, type BackendTarget } from "./backends.js";
import type { Resolve } from "./endpoints.js";
import { imageRoute } from "./images.js";
import { pagesRoute } from "./pages/index.js";
import { docsRoute } from "./pages/docs.js";
import { passThrough } from "./pass.js";
import { proxyBinding } from "./proxy.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** An extra HTTP route a later piece of work mounts on the gateway (pages, image bytes). */
export type ExtraRoute = (req: Req, res: Res, url: URL, backends: Map<ServiceName, Backend>) => Promise<boolean>;

export interface GatewayOptions {
  port?: number;
  logger?: Logger;
  /** Backend URLs; default from config. */
  targets?: BackendTarget[];
  routes?: ExtraRoute[];
  /** Resolves the backends' host names (endpoints.ts); default getaddrinfo. */
  resolve?: Resolve;
}

export interface RunningGateway {
  port: number;
  url: string;
  close(graceMs?: number): Promise<void>;
}

/**
 * The gateway: one HTTP port serving the three services over Connect (JSON and binary,
 * HTTP/1.1 and HTTP/2), gRPC-Web and gRPC, relayed to the services over gRPC — or, for a
 * service that answers them itself (Ranking), passed through as bytes (pass.ts); the earlier
 * REST paths; aggregated health; Prometheus metrics. Each backend's calls are spread over the
 * addresses its host name resolves to (endpoints.ts).
 */
export async function build(cfg: GlimpseConfig, opts: GatewayOptions = {}): Promise<RunningGateway> {
  const logger = opts.logger ?? createLogger("gateway", cfg.logLevel);
  const targets = opts.targets ?? [
    { name: "ranking", url: cfg.rankingUrl, dnsName: cfg.rankingDnsName },
    { name: "training", url: cfg.trainingUrl },
    { name: "data", url: cfg.dataUrl },
  ];
  const backends = connectBackends(targets, { timeoutMs: cfg.backendTimeoutMs, tlsCa: caFromConfig(cfg), resolveMs: cfg.backendResolveMs, resolve: opts.resolve, logger });
  const byName = new Map(backends.map((b) => [b.name, b]));
  const metrics = new Metrics("gateway");
  const relayed = metrics.counter("glimpse_gateway_relayed_total", "Calls the gateway relayed to a backend over a second gRPC hop, by method (those passed through as bytes are not).", ["service", "method"]);
  const bindings = backends.map((b) => proxyBinding(b, relayed));
  const health = new HealthRegistry(bindings.map((b) => b.service.typeName));
  const apiKeys = apiKeysFromConfig(cfg);
  const shutdown = new AbortController();
  // Every in-flight call listens on the shutdown signal; 32 concurrent calls are normal.
  setMaxListeners(0, shutdown.signal);

  const connect = connectNodeAdapter({
    routes: routesFor(bindings, health),
    interceptors: [observe(logger, metrics), apiKeys.interceptor()],
    readMaxBytes: cfg.maxBodyBytes,
    shutdownSignal: shutdown.signal,
    fallback: (_req, res) => sendJson(res as Res, 404, { code: "not_found", message: "no such route" }),
  }) as Handler;

  const corsAllowed = (origin: string | undefined) => origin !== undefined && (cfg.corsOrigins.includes("*") || cfg.corsOrigins.includes(origin));
  const restCtx = { backends: byName, maxBodyBytes: cfg.maxBodyBytes, timeoutMs: cfg.backendTimeoutMs };
  const pass = passThrough({ endpoints: new Map(backends.map((b) => [b.name, b.endpoints])), maxBodyBytes: cfg.maxBodyBytes, timeoutMs: cfg.backendTimeoutMs, tlsCa: caFromConfig(cfg), metrics, logger });
  const pages = pagesRoute({ demoDir: cfg.rankingDemoDir });
  const docs = docsRoute();

  const handler: Handler = (req, res) => {
    const url = new URL(req.url ?? "/", "http://gateway");
    const origin = req.headers["origin"] as string | undefined;
    if (corsAllowed(origin)) {
      res.setHeader("access-control-allow-origin", origin!);
      res.setHeader("vary", "Origin");
      res.setHeader("access-control-expose-headers", [...connectCors.exposedHeaders, REQUEST_ID_HEADER].join(", "));
      if (req.method === "OPTIONS") {
        writeHead(res, 204, {
          "access-control-allow-methods": connectCors.allowedMethods.join(", "),
          "access-control-allow-headers": [...connectCors.allowedHeaders, "Authorization", REQUEST_ID_HEADER].join(", "),
          "access-control-max-age": "7200",
        });
        res.end();
        return;
      }
    }
    route(req, res, url).catch((err: unknown) => {
      logger.error({ err }, "request failed");
      if (!res.headersSent) sendJson(res, 500, { code: "internal", message: "internal error" });
      else res.end();
    });
  };

  const route = async (req: Req, res: Res, url: URL): Promise<void> => {
    if (url.pathname === "/healthz") {
      // Liveness of the gateway process itself (Kubernetes probes); /health covers the mesh.
      sendJson(res, 200, { status: "ok" });
      return;
    }
    if (url.pathname === "/health" || url.pathname === "/health/detailed") {
      const services = await checkBackends(backends);
      const ok = Object.values(services).every((s) => s.status === "SERVING");
      const body = url.pathname === "/health" ? { status: ok ? "healthy" : "degraded" } : { status: ok ? "healthy" : "degraded", gateway: "SERVING", services };
      sendJson(res, ok ? 200 : 503, body);
      return;
    }
    if (url.pathname === "/metrics") {
      const { contentType, body } = await metrics.render();
      writeHead(res, 200, { "content-type": contentType });
      res.end(body);
      return;
    }
    // Ranking's REST paths, Connect and gRPC-Web calls: passed through as bytes.
    if (await pass(req, res, url)) return;
    if (await handleRest(req, res, url, restCtx)) return;
    for (const extra of [imageRoute, ...(opts.routes ?? [])]) if (await extra(req, res, url, byName)) return;
    // The search page and the demo pack's images, the OpenAPI document and its reference page
    // (services/gateway/src/pages).
    if (await pages(req, res, url)) return;
    if (await docs(req, res, url)) return;
    connect(req, res);
  };

  const listening = await listen({ host: cfg.host, port: opts.port ?? cfg.gatewayPort, handler, http1: true, tls: tlsFromConfig(cfg) });
  health.setAll(ServingStatus.SERVING);
  const url = `${cfg.tlsCert ? "https" : "http"}://${cfg.host}:${listening.port}`;
  logger.info({ url, backends: targets }, "gateway listening");
  return {
    port: listening.port,
    url,
    async close(graceMs = 10_000) {
      await drain(listening, health, shutdown, graceMs);
      for (const b of backends) b.close();
    },
  };
}
