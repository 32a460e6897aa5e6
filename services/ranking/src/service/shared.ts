/**
 * What the Ranking RPC files share: the snapshot lease, the scope's gallery, field checks and
 * NOT_FOUND errors, and hits as messages. Every answer names the model and dataset version
 * that produced it, so the hits are built from the index that was searched.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { errorWithReason, notFound, ranking, rpcDetails } from "@glimpse/api";
import type { ObjectStore } from "@glimpse/objectstore";
import { SPLIT, type GalleryIndex, type SplitNumber } from "../index/gallery.js";
import type { IndexDocument } from "../index/store.js";
import type { Hit } from "../index/topk.js";
import type { ModelManager, PendingIndex } from "../lifecycle.js";
import type { Snapshot } from "../lifecycle/snapshot.js";

export type RankingImpl = ServiceImpl<typeof ranking.RankingService>;
type ImageHitInit = MessageInitShape<typeof ranking.ImageHitSchema>;
type CaptionHitInit = MessageInitShape<typeof ranking.CaptionHitSchema>;

export interface ServiceDeps {
  manager: ModelManager;
  store: ObjectStore;
  demoQueries: string[];
}

/** Runs `fn` on the serving snapshot, holding it until `fn` is done. */
export async function withSnapshot<T>(manager: ModelManager, fn: (s: Snapshot) => Promise<T>): Promise<T> {
  const s = manager.acquire();
  try {
    return await fn(s);
  } finally {
    s.release();
  }
}

/** The gallery a scope names: the serving one, or another dataset version's stored index. */
export async function galleryFor(manager: ModelManager, s: Snapshot, scope: ranking.Scope | undefined): Promise<GalleryIndex> {
  const dv = scope?.datasetVersion ?? "";
  if (dv === "") return s.gallery;
  const idx = await manager.indexForVersion(s, dv);
  if (idx) return idx;
  const dataset = await manager.findDataset(dv).catch(() => undefined);
  if (!dataset) throw notFoundField("scope.dataset_version", "dataset version", dv);
  throw errorWithReason(
    Code.FailedPrecondition,
    "INDEX_NOT_BUILT",
    `dataset version ${dv} of ${dataset} has no index for model ${s.model.version}; build it with BuildIndex`,
    { dataset, dataset_version: dv, model_version: s.model.version },
  );
}

export function splitOf(scope: ranking.Scope | undefined): SplitNumber {
  return scope?.split ?? SPLIT.unspecified;
}

/** NOT_FOUND naming the resource, plus the field that named it (google.rpc.BadRequest). */
export function notFoundField(field: string, type: string, name: string, where = "the gallery"): ConnectError {
  const err = notFound(type, name, `${type} ${JSON.stringify(name)} not found (${field})`);
  err.details.push({
    desc: rpcDetails.BadRequestSchema,
    value: create(rpcDetails.BadRequestSchema, {
      fieldViolations: [create(rpcDetails.BadRequest_FieldViolationSchema, { field, description: `no ${type} ${JSON.stringify(name)} in ${where}`, reason: "NOT_FOUND" })],
    }),
  });
  return err;
}

/**
 * Gateway path of an image's bytes: the Data service serves every published dataset version,
 * the demo gallery (`flickr8k-demo`) included. (The gateway also serves the demo pack's files
 * at /demo/images/<id>, which needs no Data service.)
 */
function imageUrl(dataset: string, datasetVersion: string, imageId: string): string {
  return `/data/images/${encodeURIComponent(dataset)}/${datasetVersion}/${encodeURIComponent(imageId)}`;
}

export function imageHits(index: GalleryIndex, hits: Hit[]): ImageHitInit[] {
  const d = index.data;
  return hits.map((h, i) => ({
    imageId: d.imageIds[h.row]!,
    score: h.score,
    rankScore: h.score + index.imageBias(h.row),
    rank: i + 1,
    split: d.imageSplits[h.row]!,
    captions: d.imageCaptions[h.row]!,
    imageUrl: imageUrl(d.dataset, d.datasetVersion, d.imageIds[h.row]!),
  }));
}

/** What GetModelStatus and BuildIndex say of an index. */
/** build_time, and the deprecated built_at still filled for a release. */
function buildTimes(at: Date): { buildTime: Timestamp; builtAt: Timestamp } {
  const t = timestampFromDate(at);
  return { buildTime: t, builtAt: t };
}

export function indexInfo(g: GalleryIndex): MessageInitShape<typeof ranking.IndexInfoSchema> {
  return {
    modelVersion: g.data.modelVersion,
    datasetVersion: g.data.datasetVersion,
    images: BigInt(g.images),
    captions: BigInt(g.captions),
    kind: g.kind,
    ...buildTimes(g.data.builtAt),
  };
}

/** An index build waited for (GetModelStatus.pending_index, GetCollectionIndex.pending). */
export function indexBuild(p: PendingIndex): MessageInitShape<typeof ranking.IndexBuildSchema> {
  const state = p.failed ? ranking.IndexBuildState.FAILED : ranking.IndexBuildState.RUNNING;
  return { modelVersion: p.model, dataset: p.dataset, datasetVersion: p.datasetVersion, executor: p.executor, job: p.job, detail: p.detail, failed: p.failed, state };
}

/** The same, from a stored index's document (without loading the index). */
export function indexInfoOf(doc: IndexDocument): MessageInitShape<typeof ranking.IndexInfoSchema> {
  return {
    modelVersion: doc.model_version,
    datasetVersion: doc.dataset_version,
    images: BigInt(doc.images.count),
    captions: BigInt(doc.captions.count),
    kind: doc.hnsw ? "hnsw" : "exact",
    ...buildTimes(new Date(doc.built_at)),
  };
}

export function captionHits(index: GalleryIndex, hits: Hit[]): CaptionHitInit[] {
  return hits.map((h, i) => {
    const ref = index.captionRefs[h.row]!;
    const imageId = index.data.imageIds[ref.image]!;
    return { captionId: `${imageId}#${ref.n}`, imageId, text: index.captionText(h.row), score: h.score, rankScore: h.score + index.captionBias(h.row), rank: i + 1 };
  });
}
