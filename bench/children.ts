/** The service processes a benchmark starts: waiting for Ranking to serve, and stopping a child. */
import type { ChildProcess } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { health, ranking } from "@glimpse/api";

/**
 * Polls Ranking's health at `url` until it is SERVING; throws if `child` exits or `timeoutMs`
 * passes. Resolves with when (performance.now()) health first answered and when it said SERVING.
 */
export async function waitServing(url: string, child: ChildProcess, timeoutMs: number, pollMs = 250): Promise<{ firstAnswer: number; serving: number }> {
  const hc = createClient(health.Health, createGrpcTransport({ baseUrl: url }));
  const end = performance.now() + timeoutMs;
  let firstAnswer = 0;
  while (performance.now() < end) {
    if (child.exitCode !== null) throw new Error(`ranking exited with ${child.exitCode}`);
    try {
      const { status } = await hc.check({ service: ranking.RankingService.typeName });
      firstAnswer ||= performance.now();
      if (status === health.HealthCheckResponse_ServingStatus.SERVING) return { firstAnswer, serving: performance.now() };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  throw new Error("ranking did not become SERVING in time");
}

/** SIGTERM, then resolves once the child has exited (at once if it already has). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}
