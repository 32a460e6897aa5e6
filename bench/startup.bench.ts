/**
 * Start-up of a service run as production runs it (`node services/<name>/dist/main.js`, compiled by
 * `npm run build`) against the same service from its TypeScript sources through tsx (how the
 * project ran before it compiled), interleaved, the order flipped every round:
 *
 *   npm run bench:startup -- [--rounds 5] [--queries 300]
 *
 * Ranking (embedded store, the demo pack): time to the first health answer, to SERVING, and the
 * text→image c=1 p50 over direct gRPC afterwards (steady state). Gateway: time to its first /health
 * answer. Medians of the rounds.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ranking } from "@glimpse/api";
import { freePorts } from "@glimpse/runtime/testing";
import { stopChild, waitServing } from "./children.js";
import { median, percentile } from "./stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "5" }, queries: { type: "string", default: "300" } } });
const ROUNDS = Number(args.rounds);
const QUERIES = Number(args.queries);

const VARIANTS: Record<string, (service: string) => string[]> = {
  "dist (node)": (s) => [join(ROOT, "services", s, "dist", "main.js")],
  "source (tsx)": (s) => ["--conditions=source", "--import", "tsx", join(ROOT, "services", s, "src", "main.ts")],
};

async function ranking1(args: string[], dataDir: string): Promise<{ health: number; serving: number; p50: number }> {
  const [port, metrics] = await freePorts(2);
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, GLIMPSE_DATA_DIR: dataDir, GLIMPSE_ALLOW_OPEN: "true", GLIMPSE_LOG_LEVEL: "warn", GLIMPSE_RANKING_PORT: String(port), GLIMPSE_RANKING_METRICS_PORT: String(metrics), GLIMPSE_DATA_URL: "http://127.0.0.1:1" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  try {
    const { firstAnswer, serving } = await waitServing(`http://127.0.0.1:${port}`, child, 120_000, 10);
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
    const rc = createClient(ranking.RankingService, transport);
    for (let i = 0; i < 30; i++) await rc.searchImages({ query: `a dog ${i}`, topK: 10 });
    const lat: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const s = performance.now();
      await rc.searchImages({ query: `a child playing number ${i} in the park`, topK: 10 });
      lat.push(performance.now() - s);
    }
    return { health: firstAnswer - t0, serving: serving - t0, p50: percentile(lat.sort((a, b) => a - b), 50) };
  } finally {
    await stopChild(child);
  }
}

async function gateway1(args: string[]): Promise<number> {
  const [port] = await freePorts(1);
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, GLIMPSE_ALLOW_OPEN: "true", GLIMPSE_LOG_LEVEL: "warn", GLIMPSE_GATEWAY_PORT: String(port), GLIMPSE_RANKING_URL: "http://127.0.0.1:1", GLIMPSE_TRAINING_URL: "http://127.0.0.1:1", GLIMPSE_DATA_URL: "http://127.0.0.1:1" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`gateway exited (${child.exitCode})`);
      try {
        await fetch(`http://127.0.0.1:${port}/health`);
        return performance.now() - t0;
      } catch {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  } finally {
    await stopChild(child);
  }
}

const dataDir = mkdtempSync(join(tmpdir(), "glimpse-startup-"));
const results: Record<string, { health: number[]; serving: number[]; p50: number[]; gateway: number[] }> = {};
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? Object.entries(VARIANTS).reverse() : Object.entries(VARIANTS);
    for (const [name, argv] of order) {
      const r = (results[name] ??= { health: [], serving: [], p50: [], gateway: [] });
      const rk = await ranking1(argv("ranking"), dataDir);
      r.health.push(rk.health);
      r.serving.push(rk.serving);
      r.p50.push(rk.p50);
      r.gateway.push(await gateway1(argv("gateway")));
      process.stderr.write(`round ${round + 1} ${name}: ranking SERVING ${rk.serving.toFixed(0)} ms\n`);
    }
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

console.log(`\nmedians of ${ROUNDS} interleaved rounds\n`);
console.log("| run | Ranking first health answer | Ranking SERVING | Ranking text→image c=1 p50 | gateway first /health |");
console.log("|---|---:|---:|---:|---:|");
for (const [name, r] of Object.entries(results)) {
  console.log(`| ${name} | ${median(r.health).toFixed(0)} ms | ${median(r.serving).toFixed(0)} ms | ${median(r.p50).toFixed(2)} ms | ${median(r.gateway).toFixed(0)} ms |`);
}
process.exit(0);
