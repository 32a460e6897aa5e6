import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { StepName } from "./events.js";
import { canonicalJson, readJsonIfExists, sha256Hex, writeJsonAtomic } from "./util/json.js";

/** What a finished step leaves in its folder: the key of its inputs and its result. */
export interface StepMarker<R = unknown> {
  step: StepName;
  /** sha256 of the step's inputs (the parameters it uses and its upstream markers' digests). */
  key: string;
  /** sha256 of the parameters it uses alone (checked when its upstream steps' outputs are not in this work dir). */
  inputs?: string;
  /** The upstream markers' digests it was built from. */
  upstream?: Record<string, string>;
  finishedAt: string;
  result: R;
}

const DONE = ".done.json";
const STARTED = ".started.json";

/**
 * A run's working folder: one sub-folder per step, each with its outputs, a
 * `.started.json` (the input key it is working on) and, once finished, a `.done.json`
 * marker. A restarted run skips steps whose marker matches their input key and resumes a
 * step whose `.started.json` matches (keeping its partial outputs); a step whose inputs
 * changed starts over in an emptied folder.
 */
export class WorkDir {
  constructor(readonly root: string) {}

  stepDir(step: StepName): string {
    return join(this.root, step);
  }

  path(step: StepName, ...parts: string[]): string {
    return join(this.root, step, ...parts);
  }

  async marker<R>(step: StepName): Promise<StepMarker<R> | undefined> {
    return readJsonIfExists<StepMarker<R>>(join(this.stepDir(step), DONE));
  }

  /**
   * Prepares the step's folder for work on inputs `key`: keeps partial outputs of an
   * interrupted attempt on the same inputs, empties it otherwise. Clears the done marker.
   */
  async begin(step: StepName, key: string): Promise<"fresh" | "resume"> {
    const dir = this.stepDir(step);
    const started = await readJsonIfExists<{ key: string }>(join(dir, STARTED));
    let mode: "fresh" | "resume" = "resume";
    if (started?.key !== key) {
      await rm(dir, { recursive: true, force: true });
      mode = "fresh";
    } else {
      await rm(join(dir, DONE), { force: true });
    }
    await mkdir(dir, { recursive: true });
    await writeJsonAtomic(join(dir, STARTED), { step, key, startedAt: new Date().toISOString() });
    return mode;
  }

  async finish<R>(step: StepName, key: string, result: R, extra: { inputs?: string; upstream?: Record<string, string> } = {}): Promise<StepMarker<R>> {
    const marker: StepMarker<R> = { step, key, ...extra, finishedAt: new Date().toISOString(), result };
    await writeJsonAtomic(join(this.stepDir(step), DONE), marker);
    return marker;
  }
}

/** A marker's identity for downstream keys: its input key and its result. */
export function markerDigest(marker: StepMarker): string {
  return sha256Hex(canonicalJson({ key: marker.key, result: marker.result }));
}

export function inputKey(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}
