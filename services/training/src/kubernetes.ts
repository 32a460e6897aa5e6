/**
 * Kubernetes executor: one batch/v1 Job per run (see job.ts for what the Job runs).
 *
 * Progress: the trainer mirrors its events to `runs/<run_id>/events.jsonl` in the object store
 * (at each epoch, and at most every 15 s in between); the executor reads the new lines every
 * GLIMPSE_TRAINING_POLL_MS. Outcome: a watch on the Job (and the same poll, in case the watch
 * drops) reads its Complete/Failed condition; on success the model version is the registered
 * one whose config.json names the run. Stop deletes the Job (propagationPolicy Background).
 * After a restart of the service the run is followed again: the Job may still be running.
 */
import { readFileSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import type { Logger } from "@glimpse/logging";
import type { ObjectStore } from "@glimpse/objectstore";
import { parseEventLine } from "./events.js";
import type { Executor, LaunchSpec, RunSink } from "./executor.js";
import { ConfigMapOwner, isNotFound, jobStatus, parseJobTemplate, serviceAccountNamespace } from "@glimpse/kube/jobs";
import { buildJob, jobName, RUN_ID_LABEL } from "./job.js";
import { findModelOfRun } from "./models.js";

export interface KubernetesExecutorOptions {
  /** Path of the Job template (YAML). */
  templateFile: string;
  /** Default: the service account's namespace, else "default". */
  namespace?: string | undefined;
  store: ObjectStore;
  pollMs: number;
  logger: Logger;
  /**
   * The ConfigMap holding the Job template (the chart's): every Job gets it as its owner, so removing the
   * template (helm uninstall) garbage-collects the runs' Jobs and pods, running ones included.
   */
  ownerConfigMap?: string | undefined;
  /** Default: loadFromDefault() (in-cluster service account, else ~/.kube/config). */
  kubeConfig?: k8s.KubeConfig;
}

interface Followed {
  runId: string;
  job: string;
  sink: RunSink;
  /** Event lines already applied. */
  seen: number;
  sawDone: boolean;
  stopping: boolean;
  ended: boolean;
  wake?: (() => void) | undefined;
  watch?: AbortController;
  loop?: Promise<void>;
}

export class KubernetesExecutor implements Executor {
  readonly kind = "kubernetes";
  readonly namespace: string;
  private readonly template: k8s.V1Job;
  private readonly batch: k8s.BatchV1Api;
  private readonly core: k8s.CoreV1Api;
  private readonly kc: k8s.KubeConfig;
  private readonly followed = new Map<string, Followed>();
  private closed = false;
  private readonly owner: ConfigMapOwner | undefined;

  constructor(private readonly opts: KubernetesExecutorOptions) {
    this.template = parseJobTemplate(readFileSync(opts.templateFile, "utf8"), opts.templateFile);
    this.namespace = opts.namespace ?? serviceAccountNamespace();
    if (opts.kubeConfig) {
      this.kc = opts.kubeConfig;
    } else {
      this.kc = new k8s.KubeConfig();
      this.kc.loadFromDefault();
    }
    this.batch = this.kc.makeApiClient(k8s.BatchV1Api);
    this.core = this.kc.makeApiClient(k8s.CoreV1Api);
    if (opts.ownerConfigMap) this.owner = new ConfigMapOwner(this.core, this.namespace, opts.ownerConfigMap);
  }

  /** The Job a run would get (also what tests check). */
  jobFor(spec: LaunchSpec): k8s.V1Job {
    return buildJob(this.template, spec);
  }

  async launch(spec: LaunchSpec, sink: RunSink): Promise<void> {
    const body = this.jobFor(spec);
    if (this.owner) body.metadata!.ownerReferences = [await this.owner.get()];
    const created = await this.batch.createNamespacedJob({ namespace: this.namespace, body });
    const name = created.metadata?.name ?? jobName(spec.run.runId);
    this.opts.logger.info({ run_id: spec.run.runId, job: name, namespace: this.namespace }, "training Job created");
    sink.attached({ jobName: name });
    this.follow(spec.run.runId, name, sink);
  }

  async recover(spec: LaunchSpec, sink: RunSink): Promise<boolean> {
    const name = spec.run.jobName || jobName(spec.run.runId);
    this.opts.logger.info({ run_id: spec.run.runId, job: name }, "following the training Job again after a restart");
    this.follow(spec.run.runId, name, sink);
    return true;
  }

  async stop(runId: string): Promise<void> {
    const f = this.followed.get(runId);
    if (!f || f.ended) return;
    f.stopping = true;
    try {
      await this.batch.deleteNamespacedJob({ name: f.job, namespace: this.namespace, propagationPolicy: "Background" });
    } catch (err) {
      if (!isNotFound(err)) {
        f.stopping = false;
        throw err;
      }
    }
    this.end(f);
    f.sink.finished({ state: "stopped" });
  }

  async close(): Promise<void> {
    this.closed = true;
    const loops = [...this.followed.values()].map((f) => {
      this.end(f);
      return f.loop;
    });
    await Promise.all(loops);
  }

  private end(f: Followed): void {
    f.ended = true;
    f.watch?.abort();
    f.wake?.();
    this.followed.delete(f.runId);
  }

  private follow(runId: string, job: string, sink: RunSink): void {
    const f: Followed = { runId, job, sink, seen: 0, sawDone: false, stopping: false, ended: false };
    this.followed.set(runId, f);
    void this.startWatch(f);
    f.loop = this.pollLoop(f).catch((err: unknown) => {
      this.opts.logger.error({ run_id: runId, err: (err as Error).message }, "following the training Job failed");
    });
  }

  /** A watch on the Job wakes the poll loop at once when its status changes; re-opened when it ends. */
  private async startWatch(f: Followed): Promise<void> {
    if (f.ended || this.closed) return;
    try {
      f.watch = await new k8s.Watch(this.kc).watch(
        `/apis/batch/v1/namespaces/${this.namespace}/jobs`,
        { fieldSelector: `metadata.name=${f.job}` },
        () => f.wake?.(),
        () => {
          if (!f.ended) setTimeout(() => void this.startWatch(f), this.opts.pollMs).unref();
        },
      );
    } catch (err) {
      this.opts.logger.warn({ run_id: f.runId, err: (err as Error).message }, "watching the training Job failed; polling");
      if (!f.ended) setTimeout(() => void this.startWatch(f), this.opts.pollMs).unref();
    }
  }

  private async pollLoop(f: Followed): Promise<void> {
    while (!f.ended) {
      try {
        await this.readEvents(f);
        if (f.ended) return;
        let job: k8s.V1Job | undefined;
        try {
          job = await this.batch.readNamespacedJob({ name: f.job, namespace: this.namespace });
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        if (f.ended) return;
        if (!job) {
          // Deleted behind our back, or removed by its TTL after finishing while we were away.
          const version = await findModelOfRun(this.opts.store, f.runId);
          this.end(f);
          f.sink.finished(version ? { state: "succeeded", modelVersion: version } : { state: "failed", error: `the Job ${f.job} no longer exists` });
          return;
        }
        const status = jobStatus(job);
        if (status.done) {
          await this.readEvents(f);
          if (f.ended) return;
          if (status.succeeded) {
            const version = await findModelOfRun(this.opts.store, f.runId);
            this.end(f);
            f.sink.finished(version ? { state: "succeeded", modelVersion: version } : { state: "failed", error: `the Job ${f.job} succeeded but registered no model version` });
          } else {
            const detail = await this.podError(f);
            this.end(f);
            f.sink.finished({ state: "failed", error: `the Job ${f.job} failed (${status.message})${detail ? `: ${detail}` : ""}` });
          }
          return;
        }
      } catch (err) {
        this.opts.logger.warn({ run_id: f.runId, err: (err as Error).message }, "checking the training Job failed; retrying");
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.opts.pollMs);
        f.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      f.wake = undefined;
    }
  }

  /** Applies the event lines the trainer uploaded since the last read. */
  private async readEvents(f: Followed): Promise<void> {
    let text: string;
    try {
      text = (await this.opts.store.getBuffer(`runs/${f.runId}/events.jsonl`)).toString("utf8");
    } catch (err) {
      if ((err as Error).name === "ObjectNotFoundError") return;
      throw err;
    }
    const lines = text.split("\n").filter((l) => l.trim());
    if (lines.length < f.seen) f.seen = 0; // a new pod without the old run folder starts a fresh file
    for (const line of lines.slice(f.seen)) {
      if (f.ended) return;
      const ev = parseEventLine(line);
      if (!ev) continue;
      f.sink.event(ev);
      if (ev.event === "done" && !f.sawDone) {
        f.sawDone = true;
        f.sink.phase("export", "exporting ONNX models and registering the model version");
      }
    }
    f.seen = lines.length;
  }

  /** The last lines of the run's newest pod's log, best effort. */
  private async podError(f: Followed): Promise<string | undefined> {
    try {
      const pods = await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: `${RUN_ID_LABEL}=${f.runId}` });
      const created = (p: k8s.V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
      const pod = pods.items.sort((a, b) => created(b) - created(a))[0];
      if (!pod?.metadata?.name) return undefined;
      const log = await this.core.readNamespacedPodLog({ name: pod.metadata.name, namespace: this.namespace, tailLines: 20 });
      const lines = String(log).split("\n").filter((l) => l.trim() && !l.trim().startsWith("{"));
      return lines.at(-1)?.trim().slice(0, 500);
    } catch {
      return undefined;
    }
  }
}
