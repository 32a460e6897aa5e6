/**
 * The load driver of the ranking benchmarks: `total` calls from `concurrency` callers, latency
 * percentiles, throughput, and the CPU each process spent per request (from /proc).
 */
import { percentile, procStat } from "./stats.js";

const log = (s: string) => process.stderr.write(`${s}\n`);

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number | undefined): number {
  const parts = procStat(pid);
  return parts ? (Number(parts[11]) + Number(parts[12])) / 100 : NaN; // utime, stime in clock ticks (100/s)
}

/** Processes whose CPU each scenario reports per request (the peer: its uvicorn processes). */
export const cpuOf: { server: () => (number | undefined)[]; gateway: () => (number | undefined)[] } = { server: () => [], gateway: () => [] };
const cpuSum = (pids: (number | undefined)[]) => pids.reduce<number>((a, p) => a + cpuSeconds(p), 0);

export interface Result {
  scenario: string;
  path: string;
  concurrency: number;
  requests: number;
  errors: number;
  p50: number;
  p99: number;
  mean: number;
  rps: number;
  /** CPU ms per request: the Ranking process, the gateway process, this (client) process. */
  cpu: { server: number; gateway: number; client: number };
}

/** Runs `total` calls with `concurrency` workers; latency per call in ms. */
export async function load(scenario: string, path: string, concurrency: number, total: number, call: (i: number) => Promise<unknown>, warmup = Math.min(20, total)): Promise<Result> {
  for (let i = 0; i < warmup; i++) await call(total + i);
  const lat: number[] = [];
  let next = 0;
  let errors = 0;
  const servers = cpuOf.server();
  // The gateway's CPU counts wherever a request passed it (idle on direct gRPC: ~0).
  const gateways = path === "gRPC" ? [] : cpuOf.gateway();
  const c0 = { server: cpuSum(servers), gateway: cpuSum(gateways), client: process.cpuUsage() };
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const s = performance.now();
        try {
          await call(i);
          lat.push(performance.now() - s);
        } catch (err) {
          errors++;
          if (errors <= 3) log(`  error: ${(err as Error).message}`);
        }
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(c0.client);
  const per = (s: number) => (s * 1000) / total;
  const cpu = {
    server: per(cpuSum(servers) - c0.server),
    gateway: per(cpuSum(gateways) - c0.gateway),
    client: per((cu.user + cu.system) / 1e6),
  };
  lat.sort((a, b) => a - b);
  return { scenario, path, concurrency, requests: total, errors, p50: percentile(lat, 50), p99: percentile(lat, 99), mean: lat.reduce((a, b) => a + b, 0) / lat.length, rps: lat.length / wall, cpu };
}

export function table(rows: Result[]): string {
  const head = "| scenario | path | conc. | requests | p50 ms | p99 ms | mean ms | req/s | errors | CPU ms/req: ranking | gateway | client |";
  const sep = "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
  const f = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  return [head, sep, ...rows.map((r) => `| ${r.scenario} | ${r.path} | ${r.concurrency} | ${r.requests} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.mean)} | ${r.rps.toFixed(0)} | ${r.errors} | ${r.cpu.server.toFixed(2)} | ${r.cpu.gateway ? r.cpu.gateway.toFixed(2) : "-"} | ${r.cpu.client.toFixed(2)} |`)].join("\n");
}

