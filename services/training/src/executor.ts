/**
 * Where a training run executes. The manager owns run records, watchers and persistence;
 * an executor starts the trainer, feeds its events back through a RunSink and reports how the
 * run ended. Two implementations: LocalExecutor (child processes) and KubernetesExecutor (Jobs).
 */
import type { training } from "@glimpse/api";
import type { TrainerEvent } from "./events.js";
import type { LocalProcessInfo } from "./records.js";
import type { TrainingPlan } from "./trainer-config.js";

export type ExecutorKind = "local" | "kubernetes";

export type Outcome =
  | { state: "succeeded"; modelVersion: string }
  | { state: "failed"; error: string }
  | { state: "stopped" };

/** How an executor reports on one run. Calls after finished() are ignored. */
export interface RunSink {
  /** One trainer event (a JSON line of its stdout or of events.jsonl in the store). */
  event(ev: TrainerEvent): void;
  /** A line worth showing watchers (export output, executor notes). */
  log(message: string): void;
  /** A phase the executor drives itself, e.g. "export". */
  phase(name: string, message: string): void;
  /** Where the run executes, to find it again after a restart. */
  attached(info: { local?: LocalProcessInfo; jobName?: string }): void;
  finished(outcome: Outcome): void;
}

export interface LaunchSpec {
  /** run_id, config and the resolved dataset_version are set. */
  run: training.TrainingRun;
  plan: TrainingPlan;
  local?: LocalProcessInfo | undefined;
}

export interface Executor {
  readonly kind: ExecutorKind;
  /** Starts the run; resolves once it is running (process spawned / Job created), throws if it could not start. */
  launch(spec: LaunchSpec, sink: RunSink): Promise<void>;
  /**
   * Stops a run it is executing; the sink then gets finished({ state: "stopped" }). Resolves when
   * the trainer is gone (local) or the Job is deleted (kubernetes).
   */
  stop(runId: string): Promise<void>;
  /**
   * After a restart, for a run whose record says PENDING/RUNNING: true when the executor follows
   * it again (a Job still running), false when it is lost (the manager marks it FAILED).
   */
  recover(spec: LaunchSpec, sink: RunSink): Promise<boolean>;
  /** Stops following runs; the local executor also ends its trainers (the sink gets finished). */
  close(): Promise<void>;
}

export const SHUTDOWN_ERROR = "the Training service shut down during the run (its checkpoint is kept)";
