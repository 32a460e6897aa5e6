import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { loadConfig, type GlimpseConfig } from "@glimpse/runtime";
import { DEFAULT_RESTART_POLICY, Supervised, type CrashEvent, type RestartPolicy } from "./supervisor.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/**
 * How a service process starts: compiled (`node services/<c>/dist/main.js`) when this file runs
 * compiled, as in production and `npm start`; from its sources through tsx when this file runs as
 * TypeScript (tests and the benchmarks' in-process meshes), so a test sees the code it tests.
 */
export function serviceCommand(component: Component, fromSource = import.meta.url.endsWith(".ts")): string[] {
  if (!fromSource && !existsSync(join(ROOT, "services", component, "dist", "main.js"))) {
    throw new Error(`services/${component}/dist/main.js is missing: run \`npm run build\` first`);
  }
  return fromSource
    ? ["--conditions=source", "--import", "tsx", join(ROOT, "services", component, "src", "main.ts")]
    : [join(ROOT, "services", component, "dist", "main.js")];
}

/** The processes of the embedded mesh, in start order (the gateway last). */
export const COMPONENTS = ["data", "training", "ranking", "gateway"] as const;
export type Component = (typeof COMPONENTS)[number];

export interface MeshOptions {
  env?: NodeJS.ProcessEnv;
  /** Where child output goes; default: this process's stdout, each line prefixed. */
  onLine?: (component: Component, line: string) => void;
  /** How a crashed service is restarted (tests shorten it). */
  restart?: Partial<RestartPolicy>;
  /** Run the services' sources through tsx instead of their dist/ (default: when this file runs as TypeScript). */
  fromSource?: boolean;
}

export interface Mesh {
  cfg: GlimpseConfig;
  apiKey: string | undefined;
  /** Each service's supervisor: `.child` is its current process, `.restarts` how often it crashed. */
  children: Map<Component, Supervised>;
  gatewayUrl: string;
  stop(): Promise<void>;
}

/**
 * The embedded key: generated once and kept under the data dir, so restarts keep working
 * with the key a user already copied. Running open needs an explicit GLIMPSE_ALLOW_OPEN.
 */
export function embeddedApiKey(cfg: GlimpseConfig): string | undefined {
  if (cfg.apiKeys.length > 0 || cfg.allowOpen) return undefined;
  const file = join(cfg.dataDir, "api-key");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(cfg.dataDir, { recursive: true });
  const key = `glk_${randomBytes(24).toString("base64url")}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/** Starts the three services and the gateway as separate processes talking gRPC. */
export async function startMesh(opts: MeshOptions = {}): Promise<Mesh> {
  const baseEnv = { ...process.env, ...opts.env };
  const cfg = loadConfig(baseEnv);
  const apiKey = embeddedApiKey(cfg);
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    ...(apiKey ? { GLIMPSE_API_KEYS: apiKey } : {}),
    GLIMPSE_DATA_DIR: resolve(cfg.dataDir),
    GLIMPSE_RANKING_URL: baseEnv["GLIMPSE_RANKING_URL"] ?? `http://127.0.0.1:${cfg.rankingPort}`,
    GLIMPSE_TRAINING_URL: baseEnv["GLIMPSE_TRAINING_URL"] ?? `http://127.0.0.1:${cfg.trainingPort}`,
    GLIMPSE_DATA_URL: baseEnv["GLIMPSE_DATA_URL"] ?? `http://127.0.0.1:${cfg.dataPort}`,
    // glibc's malloc gives back what a model swap frees (services/ranking/src/lifecycle/memory.ts)
    MALLOC_MMAP_THRESHOLD_: baseEnv["MALLOC_MMAP_THRESHOLD_"] ?? "131072",
  };
  const onLine = opts.onLine ?? ((c, line) => process.stdout.write(`${c.padEnd(8)} | ${line}\n`));
  const children = new Map<Component, Supervised>();
  const policy = { ...DEFAULT_RESTART_POLICY, ...opts.restart };

  // One crashed service restarts with backoff while the others keep serving (the gateway answers
  // UNAVAILABLE with Retry-After for it meanwhile); before the mesh is healthy a crash is a
  // start-up failure and stops everything (waitHealthy reports it).
  for (const c of COMPONENTS) {
    const args = serviceCommand(c, opts.fromSource);
    const start = (): ChildProcess => {
      const child = spawn(process.execPath, args, { env, cwd: ROOT, stdio: ["ignore", "pipe", "pipe", "ipc"] });
      for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on("line", (l) => onLine(c, l));
      return child;
    };
    const sup = new Supervised(start, policy);
    sup.on("crash", (e: CrashEvent) => {
      onLine(c, `exited (${e.signal ?? e.code}); restarting in ${e.delayMs} ms (restart ${e.restarts})`);
      if (e.crashLoop) onLine(c, `crash loop: ${policy.loopCrashes}+ exits within ${policy.loopWindowMs / 1000} s; still restarting, at most every ${policy.maxDelayMs / 1000} s — see the lines above for why`);
    });
    children.set(c, sup);
  }

  const gatewayUrl = `${cfg.tlsCert ? "https" : "http"}://${cfg.host === "0.0.0.0" ? "127.0.0.1" : cfg.host}:${cfg.gatewayPort}`;
  const mesh: Mesh = {
    cfg,
    apiKey,
    children,
    gatewayUrl,
    async stop() {
      // Reverse order: the gateway stops taking requests before the services behind it go.
      for (const c of [...COMPONENTS].reverse()) await children.get(c)!.stop(cfg.shutdownGraceMs + 2_000);
    },
  };
  try {
    await waitHealthy(gatewayUrl, 90_000, children);
  } catch (err) {
    await mesh.stop();
    throw err;
  }
  for (const sup of children.values()) sup.arm();
  return mesh;
}

async function waitHealthy(gatewayUrl: string, timeoutMs: number, children: Map<Component, Supervised>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const servingDeadline = Date.now() + 60_000;
  let last = "";
  while (Date.now() < deadline) {
    for (const [c, sup] of children) if (!sup.running) throw new Error(`${c} exited with code ${sup.child.exitCode ?? sup.child.signalCode} during start-up`);
    try {
      const res = await fetch(`${gatewayUrl}/health/detailed`);
      last = await res.text();
      const body = JSON.parse(last) as { services?: Record<string, { status: string }> };
      // Wait for SERVING (Ranking loads its model first), but never longer than needed to say
      // where things are: a service that answers NOT_SERVING after the grace period is reported, not fatal.
      const statuses = Object.values(body.services ?? {});
      if (statuses.length > 0 && statuses.every((s) => s.status === "SERVING")) return;
      if (Date.now() > servingDeadline && statuses.every((s) => s.status !== "UNREACHABLE")) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the mesh did not become healthy in ${timeoutMs} ms; last health: ${last}`);
}

export function banner(mesh: Mesh): string {
  const { cfg } = mesh;
  const lines = [
    "",
    "Glimpse is running (embedded default)",
    `  gateway   ${mesh.gatewayUrl}   (Connect/gRPC-Web/REST; try ${mesh.gatewayUrl}/health/detailed)`,
    `  ranking   grpc://${cfg.host}:${cfg.rankingPort}   metrics :${cfg.rankingMetricsPort}/metrics`,
    `  training  grpc://${cfg.host}:${cfg.trainingPort}   metrics :${cfg.trainingMetricsPort}/metrics`,
    `  data      grpc://${cfg.host}:${cfg.dataPort}   metrics :${cfg.dataMetricsPort}/metrics`,
    `  store     ${cfg.minioEndpoint ? `MinIO ${cfg.minioEndpoint} bucket ${cfg.minioBucket}` : `filesystem ${resolve(cfg.dataDir, "store", cfg.minioBucket)}`}`,
  ];
  if (mesh.apiKey) lines.push(`  API key   ${mesh.apiKey}   (send "authorization: Bearer <key>" for mutating calls; kept in ${join(resolve(cfg.dataDir), "api-key")})`);
  else if (cfg.apiKeys.length === 0) lines.push("  API key   none — GLIMPSE_ALLOW_OPEN=true, every RPC is open");
  lines.push("");
  return lines.join("\n");
}
