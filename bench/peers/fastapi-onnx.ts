/**
 * Starts the seed-style peer (bench/peers/fastapi-onnx/server.py: FastAPI + onnxruntime +
 * numpy on uvicorn) over the same model version and stored index Glimpse serves, for
 * side-by-side runs in `npm run bench:ranking`.
 *
 * The peer's Python environment is made once with uv in the git-ignored .tools/peer-venv from
 * requirements.txt (pinned; from PyPI). Its inputs are copied out of the object store into a
 * scratch folder, so the peer reads exactly the bytes Ranking reads, whatever the store.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { ObjectStore } from "@glimpse/objectstore";
import { procStat } from "../stats.js";

const HERE = dirname(new URL(import.meta.url).pathname);
const ROOT = join(HERE, "..", "..");
const VENV = join(ROOT, ".tools", "peer-venv");
const REQUIREMENTS = join(HERE, "fastapi-onnx", "requirements.txt");

export interface PeerOptions {
  store: ObjectStore;
  modelVersion: string;
  /** Object prefix of the stored index (models/<v>/indexes/<dataset>/<dataset version>/). */
  indexPrefix: string;
  scratch: string;
  port: number;
  /** uvicorn worker processes (default: one per core of this machine's two). */
  workers: number;
  /** onnxruntime intra-op and BLAS threads per worker. */
  threads: number;
}

export interface RunningPeer {
  url: string;
  /** The uvicorn supervisor and its workers, for CPU accounting. */
  pids(): number[];
  stop(): Promise<void>;
}

/** Creates .tools/peer-venv (uv) when it is missing or its requirements changed. */
function ensurePeerVenv(log: (s: string) => void): string {
  const want = readFileSync(REQUIREMENTS, "utf8");
  const stamp = join(VENV, "requirements.txt");
  if (!existsSync(stamp) || readFileSync(stamp, "utf8") !== want) {
    try {
      execFileSync("uv", ["--version"], { stdio: "ignore" });
    } catch {
      throw new Error("the peer's Python environment is made with uv: `python3 -m pip install uv`, or leave the peer out with --paths grpc,gateway");
    }
    log("installing the peer's Python environment into .tools/peer-venv (uv)…");
    execFileSync("uv", ["venv", "-q", "--allow-existing", VENV], { stdio: "inherit" });
    execFileSync("uv", ["pip", "install", "-q", "-r", REQUIREMENTS], { stdio: "inherit", env: { ...process.env, VIRTUAL_ENV: VENV } });
    writeFileSync(stamp, want);
  }
  return VENV;
}

async function copyPrefix(store: ObjectStore, prefix: string, dir: string, skip: (key: string) => boolean): Promise<void> {
  for await (const o of store.list(prefix)) {
    const rel = o.key.slice(prefix.length);
    if (rel.includes("/") || skip(rel)) continue;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, rel), await store.getBuffer(o.key));
  }
}

/** Direct children of a process (uvicorn's workers), from /proc. */
function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d) && Number(procStat(Number(d))?.[1]) === pid) // field 4: the parent's pid
    .map(Number);
}

export async function startPeer(o: PeerOptions, log: (s: string) => void): Promise<RunningPeer> {
  const venv = ensurePeerVenv(log);
  const modelDir = join(o.scratch, "peer", "model");
  const indexDir = join(o.scratch, "peer", "index");
  await copyPrefix(o.store, `models/${o.modelVersion}/`, modelDir, () => false);
  await copyPrefix(o.store, o.indexPrefix, indexDir, (k) => !["index.json", "images.f32", "captions.f32"].includes(k));
  const threads = String(o.threads);
  const child: ChildProcess = spawn(
    join(venv, "bin", "uvicorn"),
    ["server:app", "--app-dir", join(HERE, "fastapi-onnx"), "--host", "127.0.0.1", "--port", String(o.port), "--workers", String(o.workers), "--log-level", "warning", "--no-access-log"],
    {
      env: { ...process.env, GLIMPSE_PEER_MODEL_DIR: modelDir, GLIMPSE_PEER_INDEX_DIR: indexDir, GLIMPSE_PEER_THREADS: threads, OMP_NUM_THREADS: threads, OPENBLAS_NUM_THREADS: threads, MKL_NUM_THREADS: threads },
      stdio: ["ignore", "inherit", "inherit"],
    },
  );
  const url = `http://127.0.0.1:${o.port}`;
  const end = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the peer exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${url}/inference/text-to-image`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"query":"a dog","top_k":1}' });
      // Every worker has loaded the model once the supervisor has them all and one answers.
      if (r.ok && childrenOf(child.pid!).length >= o.workers) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error("the peer did not start in 120 s");
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    url,
    pids: () => [child.pid!, ...childrenOf(child.pid!)],
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
