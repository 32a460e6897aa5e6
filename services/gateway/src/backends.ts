import type { DescService } from "@bufbuild/protobuf";
import { ConnectError, type Client } from "@connectrpc/connect";
import { SERVICES, health, type ServiceName } from "@glimpse/api";
import { grpcClient } from "@glimpse/rpc";

export interface BackendTarget {
  name: ServiceName;
  url: string;
}

export interface Backend<S extends DescService = DescService> {
  name: ServiceName;
  url: string;
  service: S;
  client: Client<S>;
  health: Client<typeof health.Health>;
}

export interface BackendHealth {
  status: string;
  url: string;
  latency_ms: number;
  error?: string;
}

/** gRPC clients for the three services behind the gateway. */
export function connectBackends(targets: BackendTarget[], opts: { timeoutMs: number; tlsCa?: string | undefined }): Backend[] {
  return targets.map(({ name, url }) => ({
    name,
    url,
    service: SERVICES[name],
    client: grpcClient(SERVICES[name], url, { timeoutMs: opts.timeoutMs, tlsCa: opts.tlsCa }) as Client<DescService>,
    // A check whose connection went away (a pod of a rolling update draining) is UNAVAILABLE and
    // asked again, on a new connection; an answer other than SERVING is asked again once (checkBackends).
    health: grpcClient(health.Health, url, { timeoutMs: 2_000, tlsCa: opts.tlsCa, attempts: 3, idempotent: true }),
  }));
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
