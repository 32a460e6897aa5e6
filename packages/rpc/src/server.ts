import { setMaxListeners } from "node:events";
import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type ConnectRouter, type HandlerContext, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { checkRequest, type ServiceName } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import type { Server } from "node:http";
import type { ApiKeys } from "./auth.js";
import { HealthRegistry, ServingStatus } from "./health.js";
import { listen, type Handler, type Listening, type TlsFiles } from "./listen.js";
import { Metrics } from "./metrics.js";
import { observe } from "./interceptors.js";
import { registerReflection } from "./reflection.js";
import { handleRest, restRoute, sendJson, type RestBackend } from "./rest.js";

export interface ServiceBinding {
  service: DescService;
  /** Methods left out answer UNIMPLEMENTED (connect-es does that). */
  impl: Partial<ServiceImpl<DescService>>;
  /**
   * Requests whose proto rules are not checked before the method, because they are checked
   * elsewhere: `true`, all of them (the gateway's relay: the service behind it checks); a list of
   * methods (local names), whose handlers check the rules themselves together with what no rule
   * can state, so that one answer lists every problem (StartTraining: its config and overrides).
   */
  checkedElsewhere?: true | readonly string[];
}

/** A typed binding: the implementation is checked against the service's methods. */
export function bind<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): ServiceBinding {
  return { service, impl: impl as Partial<ServiceImpl<DescService>> };
}

export interface GrpcServerOptions {
  /** Component name for logs and metrics, e.g. "ranking". */
  name: string;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  services: ServiceBinding[];
  logger: Logger;
  apiKeys: ApiKeys;
  tls?: TlsFiles | undefined;
  /** Serve Prometheus /metrics over HTTP/1.1 on this port; undefined = none. */
  metricsPort?: number | undefined;
  /** Largest request message accepted (bytes). */
  readMaxBytes?: number;
  /** Mark every service SERVING once listening (default true). Ranking waits for its model. */
  servingOnStart?: boolean;
  /**
   * Also answer HTTP/1.1 on the same port: Connect (JSON and binary), gRPC-Web and these services'
   * REST paths (rest.ts), called in process through the same interceptors (auth, ids, logs,
   * metrics): a client, or an ingress route, reaches the service without the gateway's relay, and
   * the gateway passes those calls through as bytes (services/gateway/src/pass.ts).
   */
  rest?: { services: Partial<Record<ServiceName, DescService>>; maxBodyBytes: number; timeoutMs: number };
}

export interface RunningServer {
  port: number;
  /** http(s)://host:port */
  url: string;
  health: HealthRegistry;
  metrics: Metrics;
  /** Drains: NOT_SERVING, stop accepting, let in-flight RPCs finish for up to graceMs. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Puts the proto's request rules in front of each method: a request that breaks a `buf.validate`
 * rule is answered INVALID_ARGUMENT with google.rpc.BadRequest (@glimpse/api validate.ts) before
 * the method runs, on every transport (after the interceptors: auth, ids, logs, metrics). Methods
 * keep only the checks no rule can state (page tokens, image decoding, what exists).
 */
function checkedImpl(binding: ServiceBinding): Partial<ServiceImpl<DescService>> {
  const elsewhere = binding.checkedElsewhere;
  if (elsewhere === true) return binding.impl;
  const impl: Record<string, Method> = {};
  for (const m of binding.service.methods) {
    const method = (binding.impl[m.localName] as Method | undefined)?.bind(binding.impl);
    if (method) impl[m.localName] = elsewhere?.includes(m.localName) ? method : checked(m, method);
  }
  return impl as unknown as Partial<ServiceImpl<DescService>>;
}

type Method = (input: unknown, ctx: HandlerContext) => unknown;

function checked(m: DescMethod, method: Method): Method {
  switch (m.methodKind) {
    case "unary":
      return (req, ctx) => {
        checkRequest(m.input, req as never);
        return method(req, ctx);
      };
    case "server_streaming":
      return async function* (req, ctx) {
        checkRequest(m.input, req as never);
        yield* method(req, ctx) as AsyncIterable<unknown>;
      };
    default:
      return (reqs, ctx) => method(checkedStream(m.input, reqs as AsyncIterable<unknown>), ctx);
  }
}

async function* checkedStream(schema: DescMessage, reqs: AsyncIterable<unknown>): AsyncGenerator<unknown> {
  for await (const req of reqs) {
    checkRequest(schema, req as never);
    yield req;
  }
}

/** Routes shared by every Glimpse gRPC server: its services, health and reflection. */
export function routesFor(bindings: ServiceBinding[], health: HealthRegistry): (router: ConnectRouter) => void {
  return (router) => {
    for (const b of bindings) router.service(b.service, checkedImpl(b));
    health.register(router);
    registerReflection(router, [...bindings.map((b) => b.service), health.service]);
  };
}

/**
 * A Glimpse gRPC server (HTTP/2, optional TLS) with grpc.health.v1, server reflection,
 * API-key auth, request ids, access logs and Prometheus metrics.
 */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<RunningServer> {
  const health = new HealthRegistry(opts.services.map((s) => s.service.typeName));
  const metrics = new Metrics(opts.name);
  const shutdown = new AbortController();
  // Every in-flight call listens on the shutdown signal; 32 concurrent calls are normal.
  setMaxListeners(0, shutdown.signal);
  const interceptors: Interceptor[] = [observe(opts.logger, metrics), opts.apiKeys.interceptor()];
  const routes = routesFor(opts.services, health);
  const handler = connectNodeAdapter({
    routes,
    interceptors,
    grpc: true,
    // gRPC-Web where the port answers HTTP/1.1 (a browser's protocol, passed through by the gateway)
    grpcWeb: opts.rest !== undefined,
    connect: true,
    readMaxBytes: opts.readMaxBytes ?? 16 * 1024 * 1024,
    shutdownSignal: shutdown.signal,
  }) as Handler;
  const listening = await listen({ host: opts.host, port: opts.port, handler: opts.rest ? withRest(handler, opts.rest, routes, interceptors) : handler, http1: opts.rest !== undefined, tls: opts.tls });
  let metricsServer: Server | undefined;
  if (opts.metricsPort !== undefined) metricsServer = await metrics.listen(opts.host, opts.metricsPort);
  if (opts.servingOnStart ?? true) health.setAll(ServingStatus.SERVING);
  const url = `${opts.tls ? "https" : "http"}://${opts.host.includes(":") ? `[${opts.host}]` : opts.host}:${listening.port}`;
  opts.logger.info({ url, services: opts.services.map((s) => s.service.typeName) }, "gRPC server listening");

  let closing: Promise<void> | undefined;
  return {
    port: listening.port,
    url,
    health,
    metrics,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        await drain(listening, health, shutdown, graceMs);
        await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
      })();
      return closing;
    },
  };
}

/** `handler` behind the REST paths of `rest.services`, answered in process by an in-memory Connect client. */
function withRest(handler: Handler, rest: NonNullable<GrpcServerOptions["rest"]>, routes: (router: ConnectRouter) => void, interceptors: Interceptor[]): Handler {
  const local = createRouterTransport(routes, { router: { interceptors } });
  const backends = new Map<ServiceName, RestBackend>();
  for (const [name, service] of Object.entries(rest.services) as [ServiceName, DescService][]) backends.set(name, { service, client: createClient(service, local) });
  const ctx = { backends, maxBodyBytes: rest.maxBodyBytes, timeoutMs: rest.timeoutMs };
  return (req, res) => {
    // gRPC calls (the hot path) go straight on: no URL parsing, no extra promise.
    if (!restRoute(req.url ?? "/", backends)) return handler(req, res);
    handleRest(req, res, new URL(req.url ?? "/", "http://service"), ctx).catch(() => (res.headersSent ? res.end() : sendJson(res, 500, { code: "internal", message: "internal error" })));
  };
}

/**
 * Drains a listening server (the gRPC services' and the gateway's): GOAWAY first (clients move
 * their next calls to a new connection: another replica), then NOT_SERVING, so a client's health
 * check on the old connection never sees a gap. Long-lived streams (watches) would hold the drain
 * open: `shutdown` ends them when the grace period ends, and at the latest once it is over.
 */
export async function drain(listening: Listening, health: HealthRegistry, shutdown: AbortController, graceMs: number): Promise<void> {
  const closed = listening.close(graceMs);
  health.setAll(ServingStatus.NOT_SERVING);
  const timer = setTimeout(() => shutdown.abort(), Math.max(0, graceMs - 100));
  timer.unref();
  await closed;
  clearTimeout(timer);
  shutdown.abort();
}

/** Closes `servers` on SIGTERM/SIGINT, then exits. */
export function closeOnSignals(logger: Logger, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "draining");
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // Started by the embedded launcher: if it dies (even by SIGKILL), the IPC channel closes
  // and this process drains instead of living on as an orphan holding its port.
  if (process.connected) process.on("disconnect", () => stop("parent exited"));
}
