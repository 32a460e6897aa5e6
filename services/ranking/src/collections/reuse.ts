/**
 * Incremental collection indexes. The index of a collection version re-uses the embeddings of an
 * earlier version's stored index for the same model — the nearest ancestor by previous_version
 * that has one, normally previous_version itself — matched by the sha256 of the normalised copy
 * each photo is embedded from, so unchanged and renamed photos are never embedded again; only
 * the others are.
 *
 * Every worker of one build must cut the same photos into the same chunks, yet an ancestor's
 * index may land while they start. So the first worker stores the ancestor it chose
 * (chunks/plan.json, create-only, removed with the chunks) and every other worker — and the
 * replacement of a stopped one — follows it.
 */
import { PreconditionFailedError, ObjectNotFoundError, type ObjectStore } from "@glimpse/objectstore";
import { readCollectionVersion } from "@glimpse/layout";
import type { BuildPlan } from "../index/plan.js";
import { chunksPrefix, loadIndex } from "../index/store.js";
import { collectionDataset, nearestIndexedAncestor, readCollectionSource } from "./source.js";

const PLAN_SCHEMA = "glimpse.index-plan/v1";

interface PlanDocument {
  schema: typeof PLAN_SCHEMA;
  /** The version whose index is re-used ("" for none). */
  base_version: string;
}

export const planKey = (modelVersion: string, id: string, version: string): string => `${chunksPrefix(modelVersion, collectionDataset(id), version)}plan.json`;

export async function planCollectionBuild(store: ObjectStore, modelVersion: string, id: string, version: string): Promise<BuildPlan> {
  const src = await readCollectionSource(store, id, version);
  const base = await agreedBase(store, modelVersion, id, version);
  if (!base) return { src, embed: src, reused: undefined, collection: true };
  const [loaded, published] = await Promise.all([loadIndex(store, modelVersion, src.dataset, base, "exact"), readCollectionVersion(store, id, base)]);
  if (!loaded || !published) throw new Error(`collection ${id}: the index of version ${base} for ${modelVersion}, which this build re-uses, is gone`);
  const baseIndex = loaded.index;
  const rowOfImage = new Map<string, number>();
  for (const p of published.manifest.photos) {
    const row = baseIndex.byId.get(p.photo_id);
    if (row !== undefined) rowOfImage.set(p.image.sha256, row);
  }
  const rows: number[] = [];
  const from: number[] = [];
  const toEmbed: string[] = [];
  src.ids.forEach((photo, i) => {
    const row = rowOfImage.get(src.images[photo]!.sha256);
    if (row === undefined) toEmbed.push(photo);
    else {
      rows.push(i);
      from.push(row);
    }
  });
  const dim = baseIndex.data.dim;
  const emb = new Float32Array(rows.length * dim);
  from.forEach((row, j) => emb.set(baseIndex.imageEmbedding(row), j * dim));
  return {
    src,
    embed: { ...src, ids: toEmbed, imageCaptions: toEmbed.map(() => []), imageSplits: new Uint8Array(toEmbed.length) },
    reused: { fromVersion: base, rows: Int32Array.from(rows), emb, dim },
    collection: true,
  };
}

/** The ancestor every worker of the build re-uses: the one stored in plan.json, else this worker's choice, stored. */
async function agreedBase(store: ObjectStore, modelVersion: string, id: string, version: string): Promise<string> {
  const key = planKey(modelVersion, id, version);
  const stored = await readPlan(store, key);
  if (stored) return stored.base_version;
  const plan: PlanDocument = { schema: PLAN_SCHEMA, base_version: (await nearestIndexedAncestor(store, modelVersion, id, version)) ?? "" };
  try {
    await store.put(key, JSON.stringify(plan), { contentType: "application/json", ifNoneMatch: "*" });
    return plan.base_version;
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
    // another worker stored its choice first
    return (await readPlan(store, key))!.base_version;
  }
}

async function readPlan(store: ObjectStore, key: string): Promise<PlanDocument | undefined> {
  try {
    const doc = JSON.parse((await store.getBuffer(key)).toString("utf8")) as PlanDocument;
    if (doc.schema !== PLAN_SCHEMA) throw new Error(`${key}: unsupported schema ${doc.schema}`);
    return doc;
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return undefined;
    throw err;
  }
}
