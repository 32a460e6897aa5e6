import type { ObjectStore } from "@glimpse/objectstore";
import type { EventSink, StepReporter } from "../events.js";
import type { ImageFormat } from "../layout.js";
import type { PipelineParams } from "../params.js";
import type { SourceAllowList } from "../sources.js";
import type { RetryOptions } from "../util/retry.js";
import type { WorkDir } from "../workdir.js";
import type { SyncHook } from "./sync.js";

/** Expected counts, checked by the validate step when given. */
export interface ExpectedCounts {
  images?: number;
  captions?: number;
  train?: number;
  dev?: number;
  test?: number;
  unsplit?: number;
}

export interface PipelineOptions {
  /** The run's working folder (restartable: a rerun into the same folder resumes). */
  workDir: string;
  /** Where the upload step publishes; required for upload. */
  store?: ObjectStore;
  onEvent?: EventSink;
  signal?: AbortSignal;
  /** The sync step's hook (default: a no-op with a log line). */
  sync?: SyncHook;
  /** Images processed at once (default 4; validate uses twice as many). */
  concurrency?: number;
  /** Objects uploaded at once (default 8). */
  uploadConcurrency?: number;
  download?: { retry?: RetryOptions; idleTimeoutMs?: number; allow?: SourceAllowList };
  expect?: ExpectedCounts;
  /** Overrides the target image format (tests use a small pixel limit). */
  imageFormat?: Partial<ImageFormat>;
}

export interface StepContext {
  params: PipelineParams;
  options: PipelineOptions;
  work: WorkDir;
  report: StepReporter;
  signal?: AbortSignal;
  imageFormat: ImageFormat;
}
