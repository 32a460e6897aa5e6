/**
 * Progress reporting, independent of gRPC. Names map 1:1 onto the proto:
 * StepName "download" ↔ PIPELINE_STEP_DOWNLOAD, StepState "running" ↔ RUN_STATE_RUNNING,
 * and StepStatus's fields ↔ glimpse.data.v1.StepStatus (step, state, started_at,
 * finished_at, done, total, unit, message). PROTO_STEP / PROTO_RUN_STATE give the generated
 * enums' values (@glimpse/api).
 */
import { data } from "@glimpse/api";

export const STEPS = ["download", "extract", "process", "split", "validate", "upload", "sync"] as const;
export type StepName = (typeof STEPS)[number];

export type StepState = "pending" | "running" | "succeeded" | "failed" | "cancelled" | "skipped";

export interface StepStatus {
  step: StepName;
  state: StepState;
  startedAt?: Date;
  finishedAt?: Date;
  /** Units of work done and expected (0 = unknown). */
  done: number;
  total: number;
  /** What done/total count: "bytes", "files", "images", "objects", "checks". */
  unit: string;
  message: string;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export type PipelineEvent =
  /** A step's status changed (state, progress or message). `status` is a snapshot. */
  | { type: "step"; status: StepStatus }
  /** A log line, for humans and log collectors. */
  | { type: "log"; level: LogLevel; step?: StepName; message: string; fields?: Record<string, unknown> };

export type EventSink = (event: PipelineEvent) => void;

/** glimpse.data.v1.PipelineStep of each step. */
export const PROTO_STEP: Record<StepName, data.PipelineStep> = {
  download: data.PipelineStep.DOWNLOAD,
  extract: data.PipelineStep.EXTRACT,
  process: data.PipelineStep.PROCESS,
  split: data.PipelineStep.SPLIT,
  validate: data.PipelineStep.VALIDATE,
  upload: data.PipelineStep.UPLOAD,
  sync: data.PipelineStep.SYNC,
};

/** glimpse.data.v1.RunState of each step state. */
export const PROTO_RUN_STATE: Record<StepState, data.RunState> = {
  pending: data.RunState.PENDING,
  running: data.RunState.RUNNING,
  succeeded: data.RunState.SUCCEEDED,
  failed: data.RunState.FAILED,
  cancelled: data.RunState.CANCELLED,
  skipped: data.RunState.SKIPPED,
};

/**
 * One step's status with throttled progress events: state changes always go out,
 * progress at most every `intervalMs` (and always when done reaches total).
 */
export class StepReporter {
  readonly status: StepStatus;
  private lastEmit = 0;

  constructor(
    step: StepName,
    private readonly sink: EventSink,
    unit: string,
    private readonly intervalMs = 200,
  ) {
    this.status = { step, state: "pending", done: 0, total: 0, unit, message: "" };
  }

  start(message = ""): void {
    this.status.state = "running";
    this.status.startedAt = new Date();
    this.status.message = message;
    this.emit();
  }

  /** Sets progress; emits when due. */
  progress(done: number, total?: number, message?: string): void {
    this.status.done = done;
    if (total !== undefined) this.status.total = total;
    if (message !== undefined) this.status.message = message;
    const now = Date.now();
    if (now - this.lastEmit >= this.intervalMs || (this.status.total > 0 && done >= this.status.total)) this.emit(now);
  }

  setUnit(unit: string, total = 0): void {
    this.status.unit = unit;
    this.status.done = 0;
    this.status.total = total;
  }

  finish(state: "succeeded" | "failed" | "cancelled" | "skipped", message: string): void {
    this.status.state = state;
    this.status.finishedAt = new Date();
    this.status.message = message;
    this.emit();
  }

  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    this.sink(fields ? { type: "log", level, step: this.status.step, message, fields } : { type: "log", level, step: this.status.step, message });
  }

  private emit(now = Date.now()): void {
    this.lastEmit = now;
    this.sink({ type: "step", status: { ...this.status } });
  }
}
