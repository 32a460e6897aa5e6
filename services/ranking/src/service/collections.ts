/**
 * The collection RPCs (issue #23): SearchCollection, ListCollectionDuplicates, GetCollectionIndex.
 * A collection answers from the index CollectionIndexes serves for the leased snapshot's model,
 * looked up in the tick the snapshot is leased: the query is embedded with the model the index
 * was built with. Every answer names the model and collection versions.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { errorWithReason, LIMITS, notFound, type ranking } from "@glimpse/api";
import { DuplicateGroup_Kind } from "@glimpse/api/gen/glimpse/data/v1/collection_pb.js";
import { collectionName, parseCollectionName, thumbnailUrl } from "@glimpse/layout";
import { NEAR_DUPLICATE_COSINE } from "../collections/duplicates.js";
import type { PhotoFilterSpec, ServedCollection } from "../collections/served.js";
import type { Hit } from "../index/topk.js";
import type { ModelManager } from "../lifecycle.js";
import type { Snapshot } from "../lifecycle/snapshot.js";
import { indexBuild, notFoundField, withSnapshot, type RankingImpl, type ServiceDeps } from "./shared.js";
import { embedUpload } from "./upload.js";

type CollectionRpcs = Pick<RankingImpl, "searchCollection" | "listCollectionDuplicates" | "getCollectionIndex">;
type PhotoHitInit = MessageInitShape<typeof ranking.PhotoHitSchema>;

export function collectionRpcs({ manager }: ServiceDeps): CollectionRpcs {
  return {
    async searchCollection(req) {
      const k = req.topK || LIMITS.topKDefault;
      return withSnapshot(manager, async (s) => {
        const c = await servedCollection(manager, s, req.name);
        // the proto requires exactly one of text, image or photo_id
        const query = req.query as Exclude<typeof req.query, { case: undefined }>;
        let exclude: number | undefined;
        let q: Float32Array;
        if (query.case === "text") q = await s.model.embedText(query.value.trim());
        else if (query.case === "image") q = (await embedUpload(s.model, "image", query.value)).embedding;
        else {
          exclude = c.rowOf(query.value);
          if (exclude === undefined) throw notFoundField("photo_id", "photo", query.value, `collection ${c.id} ${c.version}`);
          q = c.index.imageEmbedding(exclude);
        }
        const hits = await c.search(q, { k, filter: filterOf(req.filter), minScore: req.minScore || undefined, exclude });
        return { results: hits.map((h, i) => photoHit(c, h, i)), modelVersion: s.model.version, collectionVersion: c.version };
      });
    },

    async listCollectionDuplicates(req) {
      return withSnapshot(manager, async (s) => {
        const c = await servedCollection(manager, s, req.parent);
        const exact = c.photos
          .filter((p) => p.duplicate_paths.length > 0)
          .map((p) => ({ kind: DuplicateGroup_Kind.EXACT, photoIds: [p.photo_id], paths: [p.path, ...p.duplicate_paths] }));
        const near = (c.nearDuplicates?.groups ?? []).map((g) => ({ kind: DuplicateGroup_Kind.NEAR, photoIds: g.photo_ids, paths: g.photo_ids.map((id) => c.photos[c.rowOf(id)!]!.path), score: g.score }));
        return { groups: [...exact, ...near], nearThreshold: c.nearDuplicates?.threshold ?? NEAR_DUPLICATE_COSINE, collectionVersion: c.version, modelVersion: s.model.version };
      });
    },

    async getCollectionIndex(req) {
      return withSnapshot(manager, async (s) => {
        const id = parseCollectionName(req.name)!;
        const model = s.model.version;
        let st = manager.collections.status(id, model);
        if (!st?.served) {
          await manager.collections.lookup(id, s.model);
          st = manager.collections.status(id, model);
        }
        if (!st) throw notFound("collection", req.name);
        const served = st.served;
        return {
          servingVersion: served?.version ?? "",
          modelVersion: served ? model : "",
          nearDuplicates: BigInt(served?.nearDuplicates?.photos ?? 0),
          ...(st.pending ? { pending: indexBuild(st.pending) } : {}),
        };
      });
    },
  };
}

/**
 * The index answering for a collection with the snapshot's model. One not served yet is looked
 * at once more (created, or indexed, since the last poll): NOT_FOUND when there is no such
 * collection, FAILED_PRECONDITION while it has no stored index for the model.
 */
async function servedCollection(manager: ModelManager, s: Snapshot, name: string): Promise<ServedCollection> {
  const id = parseCollectionName(name)!;
  const served = manager.collections.get(id, s.model.version) ?? ((await manager.collections.lookup(id, s.model)) ? manager.collections.get(id, s.model.version) : undefined);
  if (served) return served;
  const st = manager.collections.status(id, s.model.version);
  if (!st) throw notFound("collection", collectionName(id));
  const meta = { collection: collectionName(id), model_version: s.model.version, latest_version: st.latest };
  if (!st.latest) throw errorWithReason(Code.FailedPrecondition, "COLLECTION_NOT_SYNCED", `collection ${id} has no published version yet: its first sync is running`, meta);
  const build = st.pending ? ` (${st.pending.failed ? "failed: " : ""}${st.pending.detail})` : "";
  throw errorWithReason(Code.FailedPrecondition, "COLLECTION_NOT_INDEXED", `collection ${id} has no index yet: its first sync is being embedded${build}`, meta);
}

function filterOf(f: ranking.PhotoFilter | undefined): PhotoFilterSpec | undefined {
  if (!f) return undefined;
  return {
    takenAfterMs: f.takenAfter ? timestampMs(f.takenAfter) : undefined,
    takenBeforeMs: f.takenBefore ? timestampMs(f.takenBefore) : undefined,
    pathPrefix: f.pathPrefix,
    cameraModel: f.cameraModel,
  };
}

function photoHit(c: ServedCollection, h: Hit, i: number): PhotoHitInit {
  const p = c.photos[h.row]!;
  const taken = Date.parse(p.taken_time);
  return {
    photoId: p.photo_id,
    path: p.path,
    score: h.score,
    rank: i + 1,
    thumbnailUrl: thumbnailUrl(c.id, p.photo_id),
    width: p.width,
    height: p.height,
    ...(Number.isFinite(taken) ? { takenTime: timestampFromDate(new Date(taken)) } : {}),
    cameraModel: p.camera_model,
  };
}
