import { createServer, type Server } from "node:http";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** One Prometheus registry per process, with Node's default metrics and RPC metrics. */
export class Metrics {
  readonly registry = new Registry();
  readonly rpcDuration: Histogram<"service" | "method" | "code">;
  readonly rpcTotal: Counter<"service" | "method" | "code">;

  constructor(readonly component: string) {
    this.registry.setDefaultLabels({ component });
    collectDefaultMetrics({ register: this.registry });
    this.rpcDuration = new Histogram({
      name: "glimpse_rpc_duration_seconds",
      help: "RPC latency by method and status code (streaming RPCs: until the stream ends).",
      labelNames: ["service", "method", "code"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.rpcTotal = new Counter({
      name: "glimpse_rpc_requests_total",
      help: "RPCs handled by method and status code.",
      labelNames: ["service", "method", "code"],
      registers: [this.registry],
    });
  }

  /** A counter of the process's own beside the RPC metrics (same registry, same component label). */
  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  observe(service: string, method: string, code: string, seconds: number): void {
    this.rpcDuration.observe({ service, method, code }, seconds);
    this.rpcTotal.inc({ service, method, code });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** gRPC ports speak HTTP/2 only, so Prometheus scrapes a small HTTP/1.1 side port. */
  async listen(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end();
        return;
      }
      this.render().then(
        ({ contentType, body }) => res.writeHead(200, { "content-type": contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}
