import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { health } from "@glimpse/api";

const { HealthCheckResponseSchema, Health } = health;
/** grpc.health.v1's serving status (the generated enum), as a value and a type. */
export const ServingStatus = health.HealthCheckResponse_ServingStatus;
export type ServingStatus = health.HealthCheckResponse_ServingStatus;

/**
 * The liveness entry: SERVING for as long as the process answers at all. Kubernetes' liveness
 * (and startup) probes ask it; readiness asks the service's own entry, which may be NOT_SERVING
 * for a long while (Ranking before its first model) without anything being wrong.
 */
export const LIVENESS = "liveness";

/**
 * The statuses grpc.health.v1 reports: "" for the whole server plus one per service, and
 * LIVENESS. Watchers get every change; a Kubernetes probe or the gateway polls Check.
 */
export class HealthRegistry {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly listeners = new Set<() => void>();
  /** The grpc.health.v1.Health descriptor, for reflection. */
  readonly service = Health;

  constructor(services: string[], initial: ServingStatus = ServingStatus.NOT_SERVING) {
    this.statuses.set("", initial);
    for (const s of services) this.statuses.set(s, initial);
    this.statuses.set(LIVENESS, ServingStatus.SERVING);
  }

  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const l of this.listeners) l();
  }

  /** Sets the server and every service at once (start-up and shutdown); liveness stays as it is. */
  setAll(status: ServingStatus): void {
    for (const s of this.statuses.keys()) if (s !== LIVENESS) this.set(s, status);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  register(router: ConnectRouter): void {
    router.service(Health, {
      check: (req) => {
        const status = this.get(req.service);
        if (status === undefined) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
        return create(HealthCheckResponseSchema, { status });
      },
      watch: (req, ctx) => this.watch(req.service, ctx.signal),
    });
  }

  private async *watch(service: string, signal: AbortSignal): AsyncGenerator<health.HealthCheckResponse> {
    let last: ServingStatus | undefined;
    let wake: (() => void) | undefined;
    const listener = () => wake?.();
    this.listeners.add(listener);
    try {
      while (!signal.aborted) {
        const status = this.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (status !== last) {
          last = status;
          yield create(HealthCheckResponseSchema, { status });
          continue; // the status may have changed while the consumer held the message
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      }
    } finally {
      this.listeners.delete(listener);
    }
  }
}
