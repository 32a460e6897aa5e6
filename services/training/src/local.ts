/**
 * Local executor (the embedded default): the trainer runs as a child process of the service, in
 * its own process group, then the export registers the model.
 *
 *   <GLIMPSE_TRAINER_COMMAND> --run-name <run_id> --out-dir <work>/runs --cache-dir <work>/cache
 *       --progress none --dataset <d> --dataset-version <v> (--store-dir <root> --bucket <b> | MINIO_* env)
 *       env GLIMPSE_TRAIN_CONFIG=<the request's config JSON>, PYTHONUNBUFFERED=1
 *   <GLIMPSE_TRAINER_EXPORT_COMMAND> --run-dir <work>/runs/<run_id> --upload (store flags)
 *       [--promote --promotion-metric=<m> --promotion-margin=<x>]
 *
 * The config document goes in through GLIMPSE_TRAIN_CONFIG, so flags in the configured command
 * (e.g. a tiny model for tests) override it, and the flags the service appends override both.
 * Progress: the trainer's JSON lines on stdout (the export's too: its `promotion` event carries the
 * quality gate's decision). Stop: SIGTERM to the process group, SIGKILL after
 * the grace period; the run folder (checkpoint.pt) stays for `--resume`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { SHUTDOWN_ERROR, type Executor, type LaunchSpec, type RunSink } from "./executor.js";
import { parseEventLine } from "./events.js";
import { findModelOfRun, modelRegistered } from "./models.js";

/** How the trainer reaches the object store: the same one the service uses. */
export type TrainerStore =
  | { kind: "fs"; root: string; bucket: string }
  | { kind: "minio"; endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string };

export interface LocalExecutorOptions {
  trainerCommand: string[];
  exportCommand: string[];
  /** Working directory of both commands (the repository root). */
  cwd: string;
  /** Absolute: run folders go to <workDir>/runs/<run_id>, the feature cache to <workDir>/cache. */
  workDir: string;
  trainerStore: TrainerStore;
  /** The service's own store: to check the registered model. */
  store: ObjectStore;
  stopGraceMs: number;
  logger: Logger;
  /** Extra environment for both commands. */
  env?: NodeJS.ProcessEnv;
}

interface Proc {
  runId: string;
  child: ChildProcess;
  pgid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface Running {
  current?: Proc;
  stopping?: "stop" | "shutdown";
  /** Resolves when the run's supervisor has reported the outcome. */
  done: Promise<void>;
}

const STDERR_LINES = 40;

export class LocalExecutor implements Executor {
  readonly kind = "local";
  private readonly runs = new Map<string, Running>();

  constructor(private readonly opts: LocalExecutorOptions) {}

  runDir(runId: string): string {
    return join(this.opts.workDir, "runs", runId);
  }

  /** The process group of a run's current command (tests check it is gone after a stop). */
  processGroup(runId: string): number | undefined {
    return this.runs.get(runId)?.current?.pgid;
  }

  private storeArgs(): string[] {
    const s = this.opts.trainerStore;
    return s.kind === "fs" ? ["--store-dir", s.root, "--bucket", s.bucket] : ["--bucket", s.bucket];
  }

  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.opts.env, PYTHONUNBUFFERED: "1" };
    delete env["GLIMPSE_TRAIN_CONFIG"];
    const s = this.opts.trainerStore;
    if (s.kind === "minio") {
      Object.assign(env, { MINIO_ENDPOINT: s.endpoint, MINIO_ACCESS_KEY: s.accessKey, MINIO_SECRET_KEY: s.secretKey, MINIO_BUCKET: s.bucket, MINIO_REGION: s.region });
    } else {
      // The folder store: the trainer must not fall back to a MinIO from the environment.
      for (const k of ["MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_BUCKET"]) delete env[k];
    }
    return env;
  }

  /** The trainer's command line for a run (without the environment). */
  trainArgs(spec: LaunchSpec): string[] {
    const { run, plan } = spec;
    return [
      ...this.opts.trainerCommand,
      "--run-name", run.runId,
      "--out-dir", join(this.opts.workDir, "runs"),
      "--cache-dir", join(this.opts.workDir, "cache"),
      "--progress", "none",
      "--dataset", plan.dataset,
      "--dataset-version", run.datasetVersion,
      ...this.storeArgs(),
    ];
  }

  exportArgs(spec: LaunchSpec): string[] {
    const { run, plan } = spec;
    return [
      ...this.opts.exportCommand,
      "--run-dir", this.runDir(run.runId),
      "--upload",
      "--dataset", plan.dataset,
      "--dataset-version", run.datasetVersion,
      ...this.storeArgs(),
      // `=`: a negative margin must not read as a flag
      ...(plan.promote ? ["--promote", `--promotion-metric=${plan.promotionMetric}`, `--promotion-margin=${plan.promotionMargin}`] : []),
    ];
  }

  async launch(spec: LaunchSpec, sink: RunSink): Promise<void> {
    const runId = spec.run.runId;
    if (this.runs.has(runId)) throw new Error(`run ${runId} is already executing`);
    const running: Running = { done: Promise.resolve() };
    this.runs.set(runId, running);
    try {
      const env = { ...this.env(), GLIMPSE_TRAIN_CONFIG: JSON.stringify(spec.plan.trainerConfig) };
      const train = await this.spawn(runId, this.trainArgs(spec), env);
      running.current = train;
      sink.attached({ local: { pid: train.pgid, hostname: hostname() } });
      running.done = this.supervise(spec, running, train, sink).catch((err: unknown) => {
        sink.finished({ state: "failed", error: `internal error: ${(err as Error).message}` });
      });
      void running.done.finally(() => this.runs.delete(runId));
    } catch (err) {
      this.runs.delete(runId);
      throw err;
    }
  }

  private async supervise(spec: LaunchSpec, running: Running, train: Proc, sink: RunSink): Promise<void> {
    const runId = spec.run.runId;
    const log = this.opts.logger.child({ run_id: runId });
    let sawDone = false;
    const stderr = this.follow(train, log, (line) => {
      const ev = parseEventLine(line);
      if (ev) {
        if (ev.event === "done") sawDone = true;
        sink.event(ev);
      } else if (line.trim()) {
        sink.log(line);
      }
    });
    const t = await train.exited;
    await killGroup(train.pgid, 0);
    if (running.stopping) return this.stopped(running, sink);
    if (t.code !== 0) return sink.finished({ state: "failed", error: `trainer ${exitText(t)}: ${lastError(stderr)}` });
    if (!sawDone) return sink.finished({ state: "failed", error: `trainer exited without finishing (no "done" event): ${lastError(stderr)}` });

    sink.phase("export", "exporting ONNX models and registering the model version");
    const exp = await this.spawn(runId, this.exportArgs(spec), this.env());
    running.current = exp;
    if (running.stopping) signalGroup(exp.pgid, "SIGTERM");
    let version: string | undefined;
    const expErr = this.follow(exp, log, (line) => {
      const ev = parseEventLine(line);
      const out = ev ? undefined : parseJsonObject(line);
      if (ev) sink.event(ev);
      else if (out && typeof out["version"] === "string") version = out["version"];
      else if (line.trim()) sink.log(line);
    });
    const e = await exp.exited;
    await killGroup(exp.pgid, 0);
    if (running.stopping) return this.stopped(running, sink);
    if (e.code !== 0) return sink.finished({ state: "failed", error: `export ${exitText(e)}: ${lastError(expErr)}` });
    version ??= await findModelOfRun(this.opts.store, runId);
    if (!version || !(await modelRegistered(this.opts.store, version))) {
      return sink.finished({ state: "failed", error: `export finished but registered no model version${version ? ` (models/${version}/checksums.json missing)` : ""}` });
    }
    sink.finished({ state: "succeeded", modelVersion: version });
  }

  private stopped(running: Running, sink: RunSink): void {
    sink.finished(running.stopping === "shutdown" ? { state: "failed", error: SHUTDOWN_ERROR } : { state: "stopped" });
  }

  /** Feeds stdout lines to `onLine`, keeps the last stderr lines (returned, filled as they come). */
  private follow(p: Proc, log: Logger, onLine: (line: string) => void): string[] {
    const tail: string[] = [];
    createInterface({ input: p.child.stdout! }).on("line", onLine);
    createInterface({ input: p.child.stderr! }).on("line", (line) => {
      log.debug({ stderr: line }, "trainer");
      tail.push(line);
      if (tail.length > STDERR_LINES) tail.shift();
    });
    return tail;
  }

  private spawn(runId: string, argv: string[], env: NodeJS.ProcessEnv): Promise<Proc> {
    const [cmd, ...args] = argv;
    this.opts.logger.info({ run_id: runId, argv }, "starting trainer command");
    const child = spawn(cmd!, args, { cwd: this.opts.cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("close", (code, signal) => resolve({ code, signal }));
    });
    return new Promise((resolve, reject) => {
      child.once("error", (err) => reject(new Error(`could not run ${cmd}: ${err.message}`)));
      child.once("spawn", () => resolve({ runId, child, pgid: child.pid!, exited }));
    });
  }

  async stop(runId: string, why: "stop" | "shutdown" = "stop"): Promise<void> {
    const running = this.runs.get(runId);
    if (!running) return;
    running.stopping ??= why;
    const p = running.current;
    if (p) {
      signalGroup(p.pgid, "SIGTERM");
      const gone = await Promise.race([p.exited.then(() => true), sleep(this.opts.stopGraceMs).then(() => false)]);
      if (!gone) signalGroup(p.pgid, "SIGKILL");
      await p.exited;
      await killGroup(p.pgid, this.opts.stopGraceMs);
    }
    await running.done;
  }

  /** A local run cannot be followed again after a restart: end an orphaned trainer, report it lost. */
  async recover(spec: LaunchSpec): Promise<boolean> {
    const info = spec.local;
    if (info && info.hostname === hostname() && processMentions(info.pid, spec.run.runId)) {
      this.opts.logger.warn({ run_id: spec.run.runId, pgid: info.pid }, "ending the trainer left over from before the restart");
      signalGroup(info.pid, "SIGTERM");
      await killGroup(info.pid, this.opts.stopGraceMs);
    }
    return false;
  }

  async close(): Promise<void> {
    await Promise.all([...this.runs.keys()].map((id) => this.stop(id, "shutdown")));
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is empty
  }
}

/** True while any process of the group lives. */
export function groupAlive(pgid: number): boolean {
  return signalGroup(pgid, 0);
}

/** Waits up to `graceMs` for a process group to empty, then SIGKILLs what is left. */
async function killGroup(pgid: number, graceMs: number): Promise<void> {
  const until = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < until) await sleep(50);
  if (groupAlive(pgid)) {
    signalGroup(pgid, "SIGKILL");
    for (let i = 0; i < 100 && groupAlive(pgid); i++) await sleep(20);
  }
}

/** Whether a live process's command line names the run (guards against a reused pid). */
function processMentions(pid: number, runId: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(runId);
  } catch {
    return false;
  }
}

function exitText(e: { code: number | null; signal: NodeJS.Signals | null }): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
}

/** The most telling stderr line: the last that is not a warning or a traceback frame. */
function lastError(lines: string[]): string {
  const useful = lines.filter((l) => l.trim() && !/Warning\b|warnings\.warn|^\s+File "|^\s{2,}/.test(l));
  const line = (useful.at(-1) ?? lines.at(-1) ?? "no output on stderr").trim();
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

function parseJsonObject(line: string): Record<string, unknown> | undefined {
  const t = line.trim();
  if (!t.startsWith("{")) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
