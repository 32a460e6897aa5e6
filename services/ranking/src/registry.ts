/**
 * The model registry in the object store (written by the trainer's exporter):
 *
 *   models/<version>/{image_encoder.onnx, text_encoder.onnx, vocab.json, preprocess.json,
 *                     config.json, metrics.json, model_card.md, golden.json, golden/*.png, ...,
 *                     checksums.json}      checksums.json = {"<file>": "<sha256>"}, written last
 *   models/aliases/production.json → {"version": "m-…", "previous": ["m-…", …]}   (earlier productions, newest first)
 *
 * version = "m-" + the first 16 hex digits of sha256(image_encoder.onnx ‖ text_encoder.onnx ‖
 * vocab.json ‖ preprocess.json ‖ config.json).
 */
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PATTERNS, ranking } from "@glimpse/api";
import { ALIAS_KEY, modelKey, modelVersionFolders } from "@glimpse/layout/models";
import { ObjectNotFoundError, type ObjectStore } from "@glimpse/objectstore";
import type { Golden } from "./model/golden.js";
import type { ModelFiles } from "./model/model.js";
import { QUERYBANK_FILES } from "./model/querybank.js";

export { ALIAS_KEY, modelKey };
export const HASHED_FILES = ["image_encoder.onnx", "text_encoder.onnx", "vocab.json", "preprocess.json", "config.json"] as const;


/** Why a model version cannot be served; the lifecycle reports it in the model status. */
export class ModelRejectedError extends Error {
  override readonly name = "ModelRejectedError";
}

export function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** The version id the files define. */
export function versionOf(files: Record<string, Uint8Array>): string {
  const h = createHash("sha256");
  for (const f of HASHED_FILES) {
    const b = files[f];
    if (!b) throw new ModelRejectedError(`${f} is missing`);
    h.update(b);
  }
  return `m-${h.digest("hex").slice(0, 16)}`;
}

/** The production alias: the version it names, and the versions it named before (newest first). */
export interface Alias {
  version: string;
  previous: string[];
}

/** How many earlier production versions the alias remembers (the fallback of a replica that starts while the newest has no index). */
export const ALIAS_HISTORY = 5;

export async function readAliasDocument(store: ObjectStore): Promise<Alias | undefined> {
  try {
    const doc = JSON.parse((await store.getBuffer(ALIAS_KEY)).toString("utf8")) as { version?: unknown; previous?: unknown };
    if (typeof doc.version !== "string" || !PATTERNS.modelVersion.test(doc.version)) throw new Error(`${ALIAS_KEY} names no valid version`);
    const previous = Array.isArray(doc.previous) ? doc.previous.filter((v): v is string => typeof v === "string" && PATTERNS.modelVersion.test(v)) : [];
    return { version: doc.version, previous };
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return undefined;
    throw err;
  }
}

export async function readAlias(store: ObjectStore): Promise<string | undefined> {
  return (await readAliasDocument(store))?.version;
}

/** Points the alias at `version`; the version it named before goes first in `previous`. */
export async function writeAlias(store: ObjectStore, version: string, opts: { onlyIfMissing?: boolean } = {}): Promise<void> {
  const cur = opts.onlyIfMissing ? undefined : await readAliasDocument(store).catch(() => undefined);
  const previous = [...new Set([cur?.version, ...(cur?.previous ?? [])])].filter((v): v is string => v !== undefined && v !== version).slice(0, ALIAS_HISTORY);
  await store.put(ALIAS_KEY, `${JSON.stringify({ version, previous })}\n`, { contentType: "application/json", ...(opts.onlyIfMissing ? { ifNoneMatch: "*" as const } : {}) });
}

/** checksums.json of a version, or undefined when the version is absent or incomplete. */
export async function readChecksums(store: ObjectStore, version: string): Promise<Record<string, string> | undefined> {
  try {
    return JSON.parse((await store.getBuffer(modelKey(version, "checksums.json"))).toString("utf8")) as Record<string, string>;
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return undefined;
    throw err;
  }
}

export interface FetchedModel {
  version: string;
  files: ModelFiles;
  /** Every file checksums.json lists, verified. */
  all: Map<string, Buffer>;
  golden?: Golden;
  checksumsEtag: string;
}

/**
 * Downloads a version and verifies it: checksums.json present (the exporter writes it
 * last, so its absence means an incomplete upload), every listed file's sha256, the
 * required files present, and the version id derived from the files' content.
 */
export async function fetchModel(store: ObjectStore, version: string): Promise<FetchedModel> {
  if (!PATTERNS.modelVersion.test(version)) throw new ModelRejectedError(`${JSON.stringify(version)} is not a model version (m- + 16 hex)`);
  const info = await store.stat(modelKey(version, "checksums.json"));
  const sums = await readChecksums(store, version);
  if (!info || !sums) throw new ModelRejectedError(`${version}: checksums.json is missing (not in the registry, or its upload is incomplete)`);
  const all = new Map<string, Buffer>();
  for (const [file, want] of Object.entries(sums)) {
    if (file.includes("..") || file.startsWith("/")) throw new ModelRejectedError(`${version}: bad file name ${file} in checksums.json`);
    let bytes: Buffer;
    try {
      bytes = await store.getBuffer(modelKey(version, file));
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new ModelRejectedError(`${version}: ${file} is listed in checksums.json but missing`);
      throw err;
    }
    const got = sha256Hex(bytes);
    if (got !== want) throw new ModelRejectedError(`${version}: checksum mismatch for ${file} (sha256 ${got.slice(0, 12)}…, checksums.json says ${String(want).slice(0, 12)}…)`);
    all.set(file, bytes);
  }
  for (const f of HASHED_FILES) if (!all.has(f)) throw new ModelRejectedError(`${version}: ${f} is missing from checksums.json`);
  const derived = versionOf(Object.fromEntries(all));
  if (derived !== version) throw new ModelRejectedError(`${version}: its files define version ${derived} (the content does not match the version id)`);
  const files = Object.fromEntries(
    [...HASHED_FILES, ...QUERYBANK_FILES.filter((f) => all.has(f))].map((f) => [f, all.get(f)!]),
  ) as unknown as ModelFiles;
  const out: FetchedModel = { version, files, all, checksumsEtag: info.etag };
  const g = all.get("golden.json");
  if (g) out.golden = JSON.parse(g.toString("utf8")) as Golden;
  return out;
}

/** Flattens metrics.json into "split.t2i_r1"-style names (numbers only). */
function flattenMetrics(metrics: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  const split = typeof metrics["split"] === "string" ? (metrics["split"] as string) : "eval";
  const walk = (v: unknown, name: string) => {
    if (typeof v === "number" && Number.isFinite(v)) out[name] = v;
    else if (v && typeof v === "object" && !Array.isArray(v)) for (const [k, x] of Object.entries(v as Record<string, unknown>)) walk(x, name ? `${name}${name.endsWith(".") ? "" : "_"}${k}` : k);
  };
  for (const [k, v] of Object.entries(metrics)) {
    if (["t2i", "i2t"].includes(k)) walk(v, `${split}.${k}`);
    else if (["rsum", "n_images", "n_captions"].includes(k)) walk(v, `${split}.${k}`);
    else if (v && typeof v === "object" && !Array.isArray(v)) {
      // Nested sections ("dev": {t2i: {...}}, "export_parity": {...}) keep their name as a prefix.
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) walk(v2, `${k}.${k2}`);
    } else walk(v, k);
  }
  return out;
}

const infoCache = new Map<string, ranking.ModelInfo>();

/** ModelInfo of a registry version (cached: versions are immutable). undefined when absent. */
export async function modelInfo(store: ObjectStore, version: string, production = false): Promise<ranking.ModelInfo | undefined> {
  let info = infoCache.get(version);
  if (!info) {
    const stat = await store.stat(modelKey(version, "checksums.json"));
    if (!stat) return undefined;
    const json = async (f: string): Promise<Record<string, unknown>> => {
      try {
        return JSON.parse((await store.getBuffer(modelKey(version, f))).toString("utf8")) as Record<string, unknown>;
      } catch (err) {
        if (err instanceof ObjectNotFoundError) return {};
        throw err;
      }
    };
    const [config, metrics] = await Promise.all([json("config.json"), json("metrics.json")]);
    const str = (v: unknown) => (typeof v === "string" ? v : "");
    const createTime = timestampFromDate(stat.lastModified);
    info = create(ranking.ModelInfoSchema, {
      version,
      backbone: str(config["backbone"]),
      embeddingDim: typeof config["embed_dim"] === "number" ? config["embed_dim"] : 0,
      datasetVersion: str(config["dataset_version_resolved"]) || str(config["dataset_version"]),
      // create_time, and the deprecated created_at still filled for a release
      createTime,
      createdAt: createTime,
      metrics: flattenMetrics(metrics),
      gitCommit: str(config["git_commit"]),
      trainingRunId: str(config["run_name"]),
      configJson: JSON.stringify(config),
    });
    infoCache.set(version, info);
  }
  return create(ranking.ModelInfoSchema, { ...info, production });
}

/** Versions in the registry (complete ones: with checksums.json), newest first. */
export async function listVersions(store: ObjectStore): Promise<ranking.ModelInfo[]> {
  const versions: string[] = [];
  for await (const v of modelVersionFolders(store)) versions.push(v);
  const alias = await readAlias(store).catch(() => undefined);
  const infos = (await Promise.all(versions.map((v) => modelInfo(store, v, v === alias)))).filter((i): i is ranking.ModelInfo => i !== undefined);
  const ts = (i: ranking.ModelInfo) => Number(i.createTime?.seconds ?? 0n) * 1e3 + (i.createTime?.nanos ?? 0) / 1e6;
  return infos.sort((a, b) => ts(b) - ts(a) || (a.version < b.version ? 1 : -1));
}
