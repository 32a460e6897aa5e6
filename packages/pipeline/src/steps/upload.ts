import { readFile } from "node:fs/promises";
import type { ObjectStore } from "@glimpse/objectstore";
import { blobKey, blobsPrefix, latestKey, manifestKey, MANIFEST_SCHEMA, type Counts, type ImageRef, type Manifest, type SourceRef } from "../layout.js";
import { manifestParams } from "../params.js";
import { PipelineInputError } from "../util/errors.js";
import { moveLatest, putManifest, readLatest } from "../publish.js";
import { canonicalJson, readJson, sha256Hex, writeFileAtomic, writeJsonAtomic } from "../util/json.js";
import { forEachLimit } from "../util/pool.js";
import type { StepMarker } from "../workdir.js";
import type { StepContext } from "./context.js";
import type { DownloadStepResult } from "./download.js";
import type { ProcessedImage, ProcessStepResult } from "./process.js";
import type { SplitStepResult } from "./split.js";
import type { ValidateStepResult } from "./validate.js";

export interface UploadStepResult {
  dataset: string;
  version: string;
  manifestKey: string;
  /** Objects the manifest lists (images + captions + splits, distinct blobs). */
  objects: number;
  uploaded: number;
  /** Objects already in the store (skipped). */
  existing: number;
  bytesUploaded: number;
  /** Bytes of every object the manifest lists. */
  totalBytes: number;
  /** Whether this run moved the latest pointer (false: it already named this version). */
  published: boolean;
  /** The version the pointer named before (undefined: none). */
  previousVersion?: string;
  publishedAt: string;
  counts: Counts;
}

interface Upstream {
  download: StepMarker<DownloadStepResult>;
  process: StepMarker<ProcessStepResult>;
  split: StepMarker<SplitStepResult>;
  validate: StepMarker<ValidateStepResult>;
}

/** Builds the manifest document (no timestamps: identical inputs give identical bytes). */
function buildManifest(ctx: StepContext, up: Upstream, index: Record<string, ProcessedImage>, captionsBytes: Buffer, splitsBytes: Buffer): Manifest {
  const d = ctx.params.dataset;
  const sources: SourceRef[] = up.download.result.sources.map((s) => ({ url: s.url, sha256: s.sha256, bytes: s.bytes }));
  const images: Record<string, ImageRef> = {};
  for (const id of Object.keys(index).sort()) {
    const im = index[id] as ProcessedImage;
    images[id] = { key: blobKey(d, im.sha256), sha256: im.sha256, size: im.size, width: im.width, height: im.height };
  }
  const cSha = sha256Hex(captionsBytes);
  const sSha = sha256Hex(splitsBytes);
  return {
    schema: MANIFEST_SCHEMA,
    dataset: d,
    params: manifestParams(ctx.params),
    sources,
    image_format: ctx.imageFormat,
    counts: up.validate.result.counts,
    captions: { key: blobKey(d, cSha), sha256: cSha, size: captionsBytes.length },
    splits: { key: blobKey(d, sSha), sha256: sSha, size: splitsBytes.length },
    images,
  };
}

/** Canonical manifest bytes and the version they define. */
export function manifestBytes(m: Manifest): { bytes: Buffer; version: string } {
  const bytes = Buffer.from(canonicalJson(m));
  return { bytes, version: sha256Hex(bytes).slice(0, 16) };
}

async function existingBlobs(store: ObjectStore, dataset: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of store.list(blobsPrefix(dataset))) out.set(o.key, o.size);
  return out;
}

/**
 * Uploads every object under its content address (skipping those already there), then the
 * manifest, then — last — moves `latest.json` with a conditional write. Until that last
 * write succeeds the previously published version stays the latest, intact and readable.
 */
export async function runUpload(ctx: StepContext, up: Upstream): Promise<UploadStepResult> {
  const { work, report, params } = ctx;
  const store = ctx.options.store;
  if (!store) throw new PipelineInputError("the upload step needs an object store");
  const d = params.dataset;
  await store.init();

  const index = await readJson<Record<string, ProcessedImage>>(work.path("process", "images.json"));
  const captionsBytes = await readFile(work.path("process", "captions.json"));
  const splitsBytes = await readFile(work.path("split", "splits.json"));
  if (sha256Hex(captionsBytes) !== up.process.result.captionsFile.sha256) throw new PipelineInputError("process/captions.json changed since the process step; re-run it");
  if (sha256Hex(splitsBytes) !== up.split.result.splitsFile.sha256) throw new PipelineInputError("split/splits.json changed since the split step; re-run it");

  const manifest = buildManifest(ctx, up, index, captionsBytes, splitsBytes);
  const { bytes: mBytes, version } = manifestBytes(manifest);
  const mKey = manifestKey(d, version);
  await writeFileAtomic(work.path("upload", "manifest.json"), mBytes);

  // Everything the manifest lists, each distinct blob once.
  interface Item {
    key: string;
    size: number;
    sha256: string;
    load: () => Promise<Buffer>;
    contentType: string;
  }
  const items = new Map<string, Item>();
  const bySha = new Map<string, string>();
  for (const [id, im] of Object.entries(index)) if (!bySha.has(im.sha256)) bySha.set(im.sha256, id);
  for (const [sha, id] of bySha) {
    const im = index[id] as ProcessedImage;
    items.set(blobKey(d, sha), { key: blobKey(d, sha), size: im.size, sha256: sha, contentType: "image/jpeg", load: () => readFile(work.path("process", "images", `${id}.jpg`)) });
  }
  for (const [ref, buf] of [[manifest.captions, captionsBytes], [manifest.splits, splitsBytes]] as const) {
    items.set(ref.key, { key: ref.key, size: ref.size, sha256: ref.sha256, contentType: "application/json", load: async () => buf });
  }
  const totalBytes = [...items.values()].reduce((n, i) => n + i.size, 0);

  const have = await existingBlobs(store, d);
  const todo = [...items.values()].filter((i) => have.get(i.key) !== i.size).sort((a, b) => (a.key < b.key ? -1 : 1));
  const existing = items.size - todo.length;
  report.setUnit("objects", items.size);
  report.progress(existing, items.size, `${todo.length} of ${items.size} objects to upload`);
  report.log("info", `version ${version}: ${items.size} objects, ${existing} already in ${store.location}, ${todo.length} to upload`);

  let done = existing;
  let bytesUploaded = 0;
  await forEachLimit(
    todo,
    ctx.options.uploadConcurrency ?? 8,
    async (item) => {
      const body = await item.load();
      if (body.length !== item.size || sha256Hex(body) !== item.sha256) throw new PipelineInputError(`${item.key}: local file changed since it was processed; re-run the pipeline`);
      await store.put(item.key, body, { contentType: item.contentType });
      bytesUploaded += body.length;
      report.progress(++done);
    },
    ctx.signal,
  );

  // The manifest (immutable), then — last — the pointer, compare-and-swap.
  await putManifest(store, d, version, mBytes);
  const current = await readLatest(store, d);
  if (current && !current.pointer) report.log("warn", `${latestKey(d)} is not valid JSON; replacing it`);
  const move = await moveLatest(store, d, version, current);
  const published = move.moved;
  const pointerAt = move.publishedAt;
  if (published) report.log("info", `published ${d} version ${version}${move.previous ? ` (was ${move.previous.version})` : ""}`);
  else report.log("info", `${latestKey(d)} already names version ${version}; nothing to publish`);

  const result: UploadStepResult = {
    dataset: d,
    version,
    manifestKey: mKey,
    objects: items.size,
    uploaded: todo.length,
    existing,
    bytesUploaded,
    totalBytes,
    published,
    publishedAt: pointerAt,
    counts: manifest.counts,
  };
  if (move.previous?.version) result.previousVersion = move.previous.version;
  await writeJsonAtomic(work.path("upload", "result.json"), result);
  await writeFileAtomic(work.path("upload", "version"), version); // an Argo output parameter
  return result;
}
