/**
 * Who computes an index that is not stored yet (GLIMPSE_INDEX_EXECUTOR):
 *   - local: a worker process of this Ranking, one pair at a time: the shard worker an index Job
 *     runs, with one shard; serving goes on meanwhile, on an event loop the encoders never hold.
 *   - kubernetes: an Indexed Job per pair (index-job.ts). Every replica asks for the same Job by
 *     name, so the index is computed once; replicas only load what the Job stored.
 * ensure() is cheap and idempotent: the lifecycle calls it at every registry check while it
 * waits for a pair, and shows what it returns in the model status.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import * as k8s from "@kubernetes/client-node";
import { ConfigMapOwner, isConflict, isNotFound, jobStatus, parseJobTemplate, serviceAccountNamespace } from "@glimpse/kube/jobs";
import type { Logger } from "@glimpse/logging";
import { storeConfigOf, type ObjectStore } from "@glimpse/objectstore";
import { serviceEntry } from "../entry.js";
import { CHUNK_IMAGES } from "../index/shard.js";
import { buildIndexJob, indexJobName, type IndexPair } from "./index-job.js";

export type { IndexPair };

export interface BuildState {
  executor: "local" | "kubernetes";
  job: string;
  detail: string;
  failed: boolean;
  /** An index Job's shards, and how many are done. */
  shards?: number;
  shardsDone?: number;
}

export interface IndexBuilder {
  readonly kind: "local" | "kubernetes";
  /** Makes sure the pair's index is being computed; says where that stands. */
  ensure(pair: IndexPair): Promise<BuildState>;
  /** Where the pair's computation stands if one was started (by any replica), without starting one. */
  peek?(pair: IndexPair): Promise<BuildState | undefined>;
  close(): Promise<void>;
}

/** ensure(), with a failure to even ask reported as a failed build rather than thrown (the caller keeps serving). */
export function ensureReported(builder: IndexBuilder, pair: IndexPair): Promise<BuildState> {
  return builder.ensure(pair).catch((err: unknown): BuildState => ({ executor: builder.kind, job: "", detail: `cannot start: ${(err as Error).message}`, failed: true }));
}

const key = (p: IndexPair) => `${p.model}/${p.dataset}/${p.datasetVersion}`;

export interface LocalBuilderOptions {
  store: ObjectStore;
  logger: Logger;
  /** A failed build is tried again after this long (ms). */
  retryMs?: number;
}

/**
 * The shard worker as a child process (the CLI an index Job's pod runs, with one shard): its
 * encoders run on its own threads, so this process's event loop — health, searches — is never
 * held by an index build. From sources (tests) through tsx, else the compiled CLI.
 */
function workerCommand(): { args: string[]; cwd: string } {
  const cli = serviceEntry("../cli", import.meta.url);
  return { args: [...cli.execArgv, cli.path], cwd: resolve(dirname(cli.path), "../../..") };
}

/** A worker's log line as a reason: its error or message when it is JSON, else the line. */
function reasonOf(line: string): string {
  try {
    const rec = JSON.parse(line) as { msg?: string; err?: string };
    return String(rec.err ?? rec.msg);
  } catch {
    return line;
  }
}

export class LocalIndexBuilder implements IndexBuilder {
  readonly kind = "local";
  private running: { key: string; child: ChildProcess; done: Promise<void> } | undefined;
  private readonly progress = new Map<string, string>();
  private readonly failures = new Map<string, { message: string; at: number }>();
  private closed = false;

  constructor(private readonly opts: LocalBuilderOptions) {}

  ensure(pair: IndexPair): Promise<BuildState> {
    const k = key(pair);
    const state = (detail: string, failed = false): Promise<BuildState> => Promise.resolve({ executor: "local", job: "", detail, failed });
    if (this.running?.key === k) return state(this.progress.get(k) ?? "starting");
    const failed = this.failures.get(k);
    if (failed && Date.now() - failed.at < (this.opts.retryMs ?? 60_000)) return state(failed.message, true);
    if (this.running || this.closed) return state("queued behind another index");
    this.failures.delete(k);
    this.start(pair, k);
    return state("starting");
  }

  private start(pair: IndexPair, k: string): void {
    const { logger, store } = this.opts;
    const config = storeConfigOf(store);
    if (!config) {
      this.failures.set(k, { message: "the object store was not made by createObjectStore: no worker can open it", at: Date.now() });
      return;
    }
    const t0 = performance.now();
    const { args, cwd } = workerCommand();
    logger.info({ ...pair }, "no stored index: computing it in a worker process while the earlier pair serves");
    const child = spawn(process.execPath, [...args, "index-shard", "--model", pair.model, "--dataset", pair.dataset, "--dataset-version", pair.datasetVersion, "--shards", "1", "--shard", "0", "--store-config", "-"], {
      cwd,
      env: process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin!.end(JSON.stringify(config));
    let chunks = 0;
    let total = 0;
    const tail: string[] = [];
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      let rec: { msg?: string; chunks?: number; level?: number };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.msg === "shard started") total = rec.chunks ?? 0;
      if (rec.msg === "chunk stored") chunks++;
      if (total) this.progress.set(k, `${chunks}/${total} chunks of ${CHUNK_IMAGES} images embedded`);
      if ((rec.level ?? 0) >= 40) logger.warn({ worker: rec }, "index worker");
    };
    createInterface({ input: child.stdout! }).on("line", onLine);
    createInterface({ input: child.stderr! }).on("line", onLine);
    const done = new Promise<void>((resolveDone) => {
      child.on("error", (err) => tail.push(err.message));
      child.on("close", (code, signal) => {
        this.progress.delete(k);
        this.running = undefined;
        if (code === 0) {
          logger.info({ ...pair, chunks, seconds: Math.round((performance.now() - t0) / 100) / 10 }, "index computed and stored");
        } else if (!this.closed) {
          const why = tail.slice(-3).map(reasonOf).join("; ");
          const message = `index of ${pair.dataset} ${pair.datasetVersion} for ${pair.model} failed (worker exit ${code ?? signal}): ${why}`;
          this.failures.set(k, { message, at: Date.now() });
          logger.warn({ ...pair, err: message }, "index computation failed; the earlier pair keeps serving");
        }
        resolveDone();
      });
    });
    this.progress.set(k, "starting");
    this.running = { key: k, child, done };
  }

  /** Stops a worker under way: it stores the chunk it is embedding and exits; the next start goes on from there. */
  async close(): Promise<void> {
    this.closed = true;
    this.running?.child.kill("SIGTERM");
    await this.running?.done;
  }
}

export interface KubernetesBuilderOptions {
  templateFile: string;
  namespace?: string | undefined;
  ownerConfigMap?: string | undefined;
  parallelism: number;
  logger: Logger;
  /** A failed Job is deleted (and so made again on the next check) after this long (ms). */
  retryMs?: number;
  kubeConfig?: k8s.KubeConfig;
}

/** What a pair's Job says of its computation (asked only while the pair's index is not stored). */
function jobState(name: string, job: k8s.V1Job): BuildState {
  const s = jobStatus(job);
  const state = { executor: "kubernetes" as const, job: name };
  if (s.done) return { ...state, detail: s.succeeded ? "completed, but no index is stored" : `failed: ${s.message}`, failed: !s.succeeded };
  const completions = job.spec?.completions ?? 1;
  const done = job.status?.succeeded ?? 0;
  return { ...state, detail: `${done}/${completions} shards done, ${job.status?.active ?? 0} running`, failed: false, shards: completions, shardsDone: done };
}

export class KubernetesIndexBuilder implements IndexBuilder {
  readonly kind = "kubernetes";
  readonly namespace: string;
  private readonly template: k8s.V1Job;
  private readonly batch: k8s.BatchV1Api;
  private readonly owner: ConfigMapOwner | undefined;

  constructor(private readonly opts: KubernetesBuilderOptions) {
    this.template = parseJobTemplate(readFileSync(opts.templateFile, "utf8"), opts.templateFile);
    this.namespace = opts.namespace ?? serviceAccountNamespace();
    const kc = opts.kubeConfig ?? new k8s.KubeConfig();
    if (!opts.kubeConfig) kc.loadFromDefault();
    this.batch = kc.makeApiClient(k8s.BatchV1Api);
    if (opts.ownerConfigMap) this.owner = new ConfigMapOwner(kc.makeApiClient(k8s.CoreV1Api), this.namespace, opts.ownerConfigMap);
  }

  /** The Job a pair gets (also what tests check). */
  jobFor(pair: IndexPair): k8s.V1Job {
    return buildIndexJob(this.template, pair, this.opts.parallelism);
  }

  async peek(pair: IndexPair): Promise<BuildState | undefined> {
    const name = indexJobName(pair);
    const job = await this.batch.readNamespacedJob({ name, namespace: this.namespace }).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    return job && jobState(name, job);
  }

  async ensure(pair: IndexPair): Promise<BuildState> {
    const name = indexJobName(pair);
    const namespace = this.namespace;
    const state = (detail: string, failed = false): BuildState => ({ executor: "kubernetes", job: name, detail, failed });
    let job: k8s.V1Job;
    try {
      job = await this.batch.readNamespacedJob({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const body = this.jobFor(pair);
      if (this.owner) body.metadata!.ownerReferences = [await this.owner.get()];
      try {
        await this.batch.createNamespacedJob({ namespace, body });
        this.opts.logger.info({ ...pair, job: name, namespace, shards: this.opts.parallelism }, "index Job created");
      } catch (e) {
        if (!isConflict(e)) throw e; // another replica made it first
      }
      return state("created");
    }
    const st = jobState(name, job);
    const s = jobStatus(job);
    if (!s.done) return st;
    // A finished Job whose index is not stored (the Job failed, or the index was removed since): after
    // a while (a minute for a completed one, whose index may have landed just after the caller looked)
    // the Job is deleted, so the next check makes it again.
    const finishedAt = Date.parse(String(job.status?.completionTime ?? job.status?.conditions?.find((c) => c.status === "True")?.lastTransitionTime ?? ""));
    if (!Number.isFinite(finishedAt) || Date.now() - finishedAt > (s.succeeded ? 60_000 : (this.opts.retryMs ?? 600_000))) {
      await this.batch.deleteNamespacedJob({ name, namespace, propagationPolicy: "Background" }).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
      this.opts.logger.warn({ ...pair, job: name }, `index Job ${st.detail}; deleted, to be made again`);
    }
    return st;
  }

  async close(): Promise<void> {}
}
