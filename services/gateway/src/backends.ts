import type * as http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { ConnectError, type Client } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { SERVICES, health, type ServiceName } from "@glimpse/api";
import type { Logger } from "@glimpse/logging";
import { SESSION_OPTIONS, grpcClient, type SessionManager } from "@glimpse/rpc";
import { Endpoints, type Resolve } from "./endpoints.js";

export interface BackendTarget {
  name: ServiceName;
  url: string;
  /** A DNS name resolving to the backend's replicas, its calls spread over them (endpoints.ts); default the URL's host. */
  dnsName?: string | undefined;
}

export interface Backend<S extends DescService = DescService> {
  name: ServiceName;
  url: string;
  service: S;
  client: Client<S>;
  health: Client<typeof health.Health>;
  /** The backend's addresses, shared by the relay and the pass-through (pass.ts). */
  endpoints: Endpoints;
  /** Stops re-resolving and closes the backend's connections. */
  close(): void;
}

export interface BackendOptions {
  timeoutMs: number;
  tlsCa?: string | undefined;
  /** How often each backend's host name is resolved again (ms); 0 = connect by name (GLIMPSE_BACKEND_RESOLVE_MS, its default). */
  resolveMs?: number;
  /** The resolver (tests: a fake one); default getaddrinfo. */
  resolve?: Resolve | undefined;
  logger?: Logger | undefined;
}

export interface BackendHealth {
  status: string;
  url: string;
  latency_ms: number;
  error?: string;
}

/** gRPC clients for the three services behind the gateway, each spreading its calls over the backend's addresses. */
export function connectBackends(targets: BackendTarget[], opts: BackendOptions): Backend[] {
  return targets.map(({ name, url, dnsName }) => {
    const endpoints = new Endpoints(url, { name: dnsName, refreshMs: opts.resolveMs ?? 5_000, resolve: opts.resolve, logger: opts.logger });
    const sessionManager = new BalancedSessions(endpoints, opts.tlsCa);
    return {
      name,
      url,
      service: SERVICES[name],
      client: grpcClient(SERVICES[name], url, { timeoutMs: opts.timeoutMs, sessionManager }) as Client<DescService>,
      // A check whose connection went away (a pod of a rolling update draining) is UNAVAILABLE and
      // asked again, on a new connection; an answer other than SERVING is asked again once (checkBackends).
      health: grpcClient(health.Health, url, { timeoutMs: 2_000, sessionManager, attempts: 3, idempotent: true }),
      endpoints,
      close() {
        endpoints.close();
        sessionManager.close();
      },
    };
  });
}

/**
 * The relay's HTTP/2 connections to one backend: a session (connect-node's Http2SessionManager, with
 * the keepalive of every client) per address, and each new stream — each call, and each attempt of a
 * retried one — on the next address in turn (Endpoints.pick). A connection that cannot be opened
 * reached nobody, so the stream goes to the next address at once, whatever the method. A session whose
 * address left the set is closed once its last stream has ended. Over TLS every session checks the
 * certificate against the URL's host name, not the address.
 */
export class BalancedSessions implements SessionManager {
  readonly authority: string;
  private readonly sessions = new Map<string, Http2SessionManager>();
  private readonly owners = new WeakMap<http2.ClientHttp2Stream, Http2SessionManager>();
  private readonly retiring = new Set<NodeJS.Timeout>();

  constructor(private readonly endpoints: Endpoints, private readonly tlsCa?: string | undefined) {
    this.authority = endpoints.base.origin;
    endpoints.onRemoved((removed) => {
      for (const origin of removed) {
        const session = this.sessions.get(origin);
        this.sessions.delete(origin);
        if (session) this.retire(session);
      }
    });
  }

  async request(method: string, path: string, headers: http2.OutgoingHttpHeaders, options: Omit<http2.ClientSessionRequestOptions, "signal">): Promise<http2.ClientHttp2Stream> {
    // a stream that could not be opened reached nobody, whatever the method: the next address takes it
    return this.endpoints.send(async (origin) => {
      const session = this.session(origin);
      const stream = await session.request(method, path, headers, options);
      this.owners.set(stream, session);
      return stream;
    }, () => true);
  }

  notifyResponseByteRead(stream: http2.ClientHttp2Stream): void {
    this.owners.get(stream)?.notifyResponseByteRead(stream);
  }

  close(): void {
    for (const t of this.retiring) clearInterval(t);
    this.retiring.clear();
    for (const s of this.sessions.values()) s.abort();
    this.sessions.clear();
  }

  private session(origin: string): Http2SessionManager {
    let s = this.sessions.get(origin);
    if (!s) {
      const tls = { ...(this.tlsCa ? { ca: this.tlsCa } : {}), ...(this.endpoints.servername ? { servername: this.endpoints.servername } : {}) };
      s = new Http2SessionManager(origin, SESSION_OPTIONS, tls);
      this.sessions.set(origin, s);
    }
    return s;
  }

  /** Closes a session once no stream is open on it (a watch may still be running). */
  private retire(session: Http2SessionManager): void {
    const idle = () => session.state() !== "open" && session.state() !== "verifying";
    if (idle()) return session.abort();
    const timer = setInterval(() => {
      if (!idle()) return;
      clearInterval(timer);
      this.retiring.delete(timer);
      session.abort();
    }, 1_000);
    timer.unref();
    this.retiring.add(timer);
  }
}

/**
 * A backend that answers anything but SERVING, or cannot be reached, is asked once more RECHECK_MS
 * later before that counts: in a rolling update a draining replica answers NOT_SERVING to a check
 * it received just before it closed its connection (GOAWAY), and a Service may still route a new
 * connection to a replica that is gone; the next check goes on a new connection, to a replica
 * that serves. A backend that is really down answers the same twice.
 */
const RECHECK_MS = 200;

/** grpc.health.v1 Check of each backend's service, in parallel, with a short deadline. */
export async function checkBackends(backends: Backend[]): Promise<Record<string, BackendHealth>> {
  const entries = await Promise.all(
    backends.map(async (b): Promise<[string, BackendHealth]> => {
      const start = performance.now();
      const check = async (): Promise<BackendHealth> => {
        try {
          const res = await b.health.check({ service: b.service.typeName }, { timeoutMs: 2_000 });
          const status = health.HealthCheckResponse_ServingStatus[res.status] ?? "UNKNOWN";
          return { status, url: b.url, latency_ms: round(performance.now() - start) };
        } catch (err) {
          return { status: "UNREACHABLE", url: b.url, latency_ms: round(performance.now() - start), error: ConnectError.from(err).message };
        }
      };
      let h = await check();
      if (h.status !== "SERVING") {
        await new Promise((r) => setTimeout(r, RECHECK_MS));
        h = await check();
      }
      return [b.name, h];
    }),
  );
  return Object.fromEntries(entries);
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
