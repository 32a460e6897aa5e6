/**
 * Run records in the object store: `training/runs/<run_id>.json`, one per run, written with
 * compare-and-swap (updateJson) so history survives restarts and concurrent writers never lose
 * an update silently.
 */
import { randomBytes } from "node:crypto";
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { training } from "@glimpse/api";
import { getJson, updateJson, type ObjectStore } from "@glimpse/objectstore";

const RUNS_PREFIX = "training/runs/";
export const RECORD_SCHEMA = "glimpse.training.run/v1";

export const runKey = (runId: string): string => `${RUNS_PREFIX}${runId}.json`;

/** What the local executor needs to find its process again after a restart. */
export interface LocalProcessInfo {
  pid: number;
  hostname: string;
}

export interface RunRecord {
  schema: typeof RECORD_SCHEMA;
  /** The TrainingRun in proto3 JSON. */
  run: JsonValue;
  local?: LocalProcessInfo;
}

export interface StoredRun {
  run: training.TrainingRun;
  local?: LocalProcessInfo | undefined;
}

/**
 * `tr-<UTC yyyymmddhhmmssSSS>-<6 hex>`: sorts by creation time, lower-case (it names
 * Kubernetes Jobs), matches PATTERNS.runId.
 */
export function newRunId(now: Date = new Date()): string {
  // Strictly increasing within the process, so runs started in the same millisecond keep their order.
  lastMs = Math.max(now.getTime(), lastMs + 1);
  const t = new Date(lastMs).toISOString().replace(/[-:TZ.]/g, "");
  return `tr-${t}-${randomBytes(3).toString("hex")}`;
}
let lastMs = 0;

function toRecord(s: StoredRun): RunRecord {
  return { schema: RECORD_SCHEMA, run: toJson(training.TrainingRunSchema, s.run), ...(s.local ? { local: s.local } : {}) };
}

function fromRecord(r: RunRecord): StoredRun {
  return { run: fromJson(training.TrainingRunSchema, r.run, { ignoreUnknownFields: true }), local: r.local };
}

/** Every stored run. Unreadable records are reported through `onError` and skipped. */
export async function loadRuns(store: ObjectStore, onError: (key: string, err: unknown) => void): Promise<StoredRun[]> {
  const out: StoredRun[] = [];
  for await (const obj of store.list(RUNS_PREFIX)) {
    if (!obj.key.endsWith(".json")) continue;
    try {
      const rec = await getJson<RunRecord>(store, obj.key);
      if (rec.schema !== RECORD_SCHEMA) throw new Error(`unknown schema ${String(rec.schema)}`);
      out.push(fromRecord(rec));
    } catch (err) {
      onError(obj.key, err);
    }
  }
  return out;
}

/** Writes a run's record (compare-and-swap on the stored version). */
export async function saveRun(store: ObjectStore, s: StoredRun): Promise<void> {
  await updateJson<RunRecord>(store, runKey(s.run.runId), () => toRecord(s));
}
