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
    // asked again, on a new connection; an answer, NOT_SERVING included, is final.
    health: grpcClient(health.Health, url, { timeoutMs: 2_000, tlsCa: opts.tlsCa, attempts: 3, idempotent: true }),
  }));
}

/** grpc.health.v1 Check of each backend's service, in parallel, with a short deadline. */
export async function checkBackends(backends: Backend[]): Promise<Record<string, BackendHealth>> {
  const entries = await Promise.all(
    backends.map(async (b): Promise<[string, BackendHealth]> => {
      const start = performance.now();
      try {
        const res = await b.health.check({ service: b.service.typeName }, { timeoutMs: 2_000 });
        const status = health.HealthCheckResponse_ServingStatus[res.status] ?? "UNKNOWN";
        return [b.name, { status, url: b.url, latency_ms: round(performance.now() - start) }];
      } catch (err) {
        return [b.name, { status: "UNREACHABLE", url: b.url, latency_ms: round(performance.now() - start), error: ConnectError.from(err).message }];
      }
    }),
  );
  return Object.fromEntries(entries);
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
