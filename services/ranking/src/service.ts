/**
 * The Ranking RPCs. Every request is validated with `Violations` (all problems at once, as
 * google.rpc.BadRequest field violations) before any work; every answer names the model
 * version and dataset version that produced it.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { errorWithReason, invalidArgument, LIMITS, notFound, PATTERNS, ranking, rpcDetails, Violations } from "@glimpse/api";
import type { ObjectStore } from "@glimpse/objectstore";
import { buildIndex, type BuildProgress } from "./index/build.js";
import type { GalleryIndex, IndexKindSetting, SplitNumber } from "./index/gallery.js";
import type { Hit } from "./index/topk.js";
import { loadIndex, readIndexDocument, saveIndex } from "./index/store.js";
import { itemBias } from "./model/querybank.js";
import type { ModelManager, Snapshot } from "./lifecycle.js";
import { LoadedModel } from "./model/model.js";
import { ImageInputError } from "./model/preprocess.js";
import { fetchModel, listVersions, modelInfo, ModelRejectedError, readAlias, readChecksums, writeAlias } from "./registry.js";

type Impl = ServiceImpl<typeof ranking.RankingService>;
type ImageHitInit = MessageInitShape<typeof ranking.ImageHitSchema>;
type CaptionHitInit = MessageInitShape<typeof ranking.CaptionHitSchema>;

export interface ServiceDeps {
  manager: ModelManager;
  store: ObjectStore;
  demoQueries: string[];
}

/**
 * Gateway path of an image's bytes: the Data service serves every published dataset version,
 * the demo gallery (`flickr8k-demo`) included. (The gateway also serves the demo pack's files
 * at /demo/images/<id>, which needs no Data service.)
 */
export function imageUrl(dataset: string, datasetVersion: string, imageId: string): string {
  return `/data/images/${encodeURIComponent(dataset)}/${datasetVersion}/${encodeURIComponent(imageId)}`;
}

export function imageHits(index: GalleryIndex, hits: Hit[]): ImageHitInit[] {
  const d = index.data;
  return hits.map((h, i) => ({
    imageId: d.imageIds[h.row]!,
    score: h.score,
    rank: i + 1,
    split: d.imageSplits[h.row]!,
    captions: d.imageCaptions[h.row]!,
    imageUrl: imageUrl(d.dataset, d.datasetVersion, d.imageIds[h.row]!),
  }));
}

export function captionHits(index: GalleryIndex, hits: Hit[]): CaptionHitInit[] {
  return hits.map((h, i) => {
    const ref = index.captionRefs[h.row]!;
    const imageId = index.data.imageIds[ref.image]!;
    return { captionId: `${imageId}#${ref.n}`, imageId, text: index.captionText(h.row), score: h.score, rank: i + 1 };
  });
}

/** Runs a registry read or write; a store failure becomes a retryable UNAVAILABLE. */
async function registryCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConnectError) throw err;
    throw errorWithReason(Code.Unavailable, "STORE_UNAVAILABLE", `the model registry cannot be reached: ${(err as Error).message}`);
  }
}

/** NOT_FOUND naming the resource, plus the field that named it (google.rpc.BadRequest). */
function notFoundField(field: string, type: string, name: string): ConnectError {
  const err = notFound(type, name, `${type} ${JSON.stringify(name)} not found (${field})`);
  err.details.push({
    desc: rpcDetails.BadRequestSchema,
    value: create(rpcDetails.BadRequestSchema, {
      fieldViolations: [create(rpcDetails.BadRequest_FieldViolationSchema, { field, description: `no ${type} ${JSON.stringify(name)} in the gallery`, reason: "NOT_FOUND" })],
    }),
  });
  return err;
}

function imageError(field: string, err: unknown): never {
  if (err instanceof ImageInputError) throw invalidArgument([{ field, description: err.message, reason: err.reason }]);
  throw err;
}

function checkScope(v: Violations, scope: ranking.Scope | undefined, field = "scope"): void {
  if (!scope) return;
  v.pattern(`${field}.dataset_version`, scope.datasetVersion, PATTERNS.datasetVersion, "16 lowercase hex digits");
  if (!Number.isInteger(scope.split) || scope.split < 0 || scope.split > 3) v.add(`${field}.split`, `unknown split ${scope.split}`, "OUT_OF_RANGE");
}

export function rankingImpl(deps: ServiceDeps): Partial<Impl> {
  const { manager, store } = deps;

  /** Runs `fn` on the serving snapshot, holding it until `fn` is done. */
  const withSnapshot = async <T>(fn: (s: Snapshot) => Promise<T>): Promise<T> => {
    const s = manager.acquire();
    try {
      return await fn(s);
    } finally {
      s.release();
    }
  };

  const galleryFor = async (s: Snapshot, scope: ranking.Scope | undefined): Promise<GalleryIndex> => {
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
  };

  const splitOf = (scope: ranking.Scope | undefined): SplitNumber => (scope?.split ?? 0) as SplitNumber;

  const embedUpload = async (model: LoadedModel, field: string, bytes: Uint8Array) => {
    try {
      return await model.embedImage(bytes);
    } catch (err) {
      return imageError(field, err);
    }
  };

  const impl: Partial<Impl> = {
    async searchImages(req) {
      const v = new Violations();
      const query = v.query("query", req.query);
      const k = v.topK("top_k", req.topK);
      checkScope(v, req.scope);
      v.throwIfAny();
      return withSnapshot(async (s) => {
        const index = await galleryFor(s, req.scope);
        const q = await s.model.embedText(query);
        return { results: imageHits(index, await index.findImages(q, k, splitOf(req.scope))), modelVersion: s.model.version, datasetVersion: index.data.datasetVersion };
      });
    },

    async searchCaptions(req) {
      const v = new Violations();
      const k = v.topK("top_k", req.topK);
      checkScope(v, req.scope);
      if (req.image.case === "imageId") v.pattern("image_id", req.image.value, PATTERNS.imageId, "1–128 of A–Z a–z 0–9 _ . -", false);
      else if (req.image.case === "imageBytes") v.imageBytes("image_bytes", req.image.value);
      else v.add("image", "give image_id or image_bytes", "REQUIRED");
      v.throwIfAny();
      return withSnapshot(async (s) => {
        const index = await galleryFor(s, req.scope);
        let q: Float32Array;
        if (req.image.case === "imageId") {
          const row = index.byId.get(req.image.value);
          if (row === undefined) throw notFoundField("image_id", "image", req.image.value);
          q = index.imageEmbedding(row);
        } else q = (await embedUpload(s.model, "image_bytes", req.image.value!)).embedding;
        return { results: captionHits(index, await index.findCaptions(q, k, splitOf(req.scope))), modelVersion: s.model.version, datasetVersion: index.data.datasetVersion };
      });
    },

    async batchSearchImages(req) {
      const v = new Violations();
      if (req.queries.length === 0) v.add("queries", "give at least one query", "REQUIRED");
      else if (req.queries.length > LIMITS.batchMaxQueries) v.add("queries", `at most ${LIMITS.batchMaxQueries} queries (got ${req.queries.length})`, "TOO_MANY");
      const queries = req.queries.slice(0, LIMITS.batchMaxQueries).map((q, i) => v.query(`queries[${i}]`, q));
      const k = v.topK("top_k", req.topK);
      checkScope(v, req.scope);
      v.throwIfAny();
      return withSnapshot(async (s) => {
        const index = await galleryFor(s, req.scope);
        const embs = await Promise.all(queries.map((q) => s.model.embedText(q)));
        const hits = await Promise.all(embs.map((e) => index.findImages(e, k, splitOf(req.scope))));
        return {
          results: queries.map((query, i) => ({ query, results: imageHits(index, hits[i]!) })),
          modelVersion: s.model.version,
          datasetVersion: index.data.datasetVersion,
        };
      });
    },

    async rankCandidates(req) {
      const v = new Violations();
      if (req.query.case === "text") v.query("text", req.query.value);
      else if (req.query.case === "imageId") v.pattern("image_id", req.query.value, PATTERNS.imageId, "1–128 of A–Z a–z 0–9 _ . -", false);
      else if (req.query.case === "imageBytes") v.imageBytes("image_bytes", req.query.value);
      else v.add("query", "give text, image_id or image_bytes", "REQUIRED");
      const ids = req.candidateImageIds;
      const texts = req.candidateTexts;
      if (ids.length > 0 && texts.length > 0) v.add("candidate_texts", "give candidate_image_ids or candidate_texts, not both", "EXCLUSIVE");
      else if (ids.length === 0 && texts.length === 0) v.add("candidate_image_ids", "give 1..1000 candidate_image_ids or candidate_texts", "REQUIRED");
      const list = ids.length > 0 ? ids : texts;
      const field = ids.length > 0 ? "candidate_image_ids" : "candidate_texts";
      if (list.length > LIMITS.candidatesMax) v.add(field, `at most ${LIMITS.candidatesMax} candidates (got ${list.length})`, "TOO_MANY");
      else if (ids.length > 0) ids.forEach((id, i) => v.pattern(`candidate_image_ids[${i}]`, id, PATTERNS.imageId, "1–128 of A–Z a–z 0–9 _ . -", false));
      else texts.forEach((t, i) => v.query(`candidate_texts[${i}]`, t));
      checkScope(v, req.scope);
      v.throwIfAny();
      return withSnapshot(async (s) => {
        const index = await galleryFor(s, req.scope);
        const dim = s.model.dim;
        let q: Float32Array;
        if (req.query.case === "text") q = await s.model.embedText(req.query.value.trim());
        else if (req.query.case === "imageId") {
          const row = index.byId.get(req.query.value);
          if (row === undefined) throw notFoundField("image_id", "image", req.query.value);
          q = index.imageEmbedding(row);
        } else q = (await embedUpload(s.model, "image_bytes", req.query.value!)).embedding;
        let cands: Float32Array;
        if (ids.length > 0) {
          const missing = ids.map((id, i) => [id, i] as const).filter(([id]) => !index.byId.has(id));
          if (missing.length > 0) {
            const [id, i] = missing[0]!;
            throw notFoundField(`candidate_image_ids[${i}]`, "image", id);
          }
          cands = new Float32Array(ids.length * dim);
          ids.forEach((id, i) => cands.set(index.imageEmbedding(index.byId.get(id)!), i * dim));
        } else cands = await s.model.embedTexts(texts.map((t) => t.trim()));
        // With a query bank, candidates are ordered as searches order them: cosine + bias.
        const bank = s.model.queryBank;
        const bias = bank ? await itemBias(ids.length > 0 ? bank.captions : bank.images, cands, dim, bank.beta) : undefined;
        const scored = list.map((candidate, i) => {
          let score = 0;
          for (let j = 0; j < dim; j++) score += cands[i * dim + j]! * q[j]!;
          return { index: i, candidate, score, order: score + (bias ? bias[i]! : 0) };
        });
        scored.sort((a, b) => b.order - a.order || a.index - b.index);
        return {
          results: scored.map((c, r) => ({ index: c.index, candidate: c.candidate, score: c.score, rank: r + 1 })),
          modelVersion: s.model.version,
          datasetVersion: index.data.datasetVersion,
        };
      });
    },

    async rankUploadedImage(req) {
      const v = new Violations();
      v.imageBytes("image", req.image);
      const kc = v.range("top_k_captions", req.topKCaptions, LIMITS.captionsTopKDefault, 1, LIMITS.topKMax);
      const ki = v.range("top_k_images", req.topKImages, 0, 0, LIMITS.topKMax);
      checkScope(v, req.scope);
      v.throwIfAny();
      return withSnapshot(async (s) => {
        const index = await galleryFor(s, req.scope);
        const up = await embedUpload(s.model, "image", req.image);
        const split = splitOf(req.scope);
        const [caps, sims] = await Promise.all([index.findCaptions(up.embedding, kc, split), ki > 0 ? index.findImages(up.embedding, ki, split) : Promise.resolve([])]);
        return {
          captions: captionHits(index, caps),
          similarImages: imageHits(index, sims),
          modelVersion: s.model.version,
          datasetVersion: index.data.datasetVersion,
          width: up.width,
          height: up.height,
        };
      });
    },

    async getModelInfo() {
      return withSnapshot(async (s) => {
        const st = manager.status();
        const info = await modelInfo(store, s.model.version, s.model.version === st.productionVersion);
        if (!info) throw notFound("model version", s.model.version);
        return { model: info };
      });
    },

    getModelStatus() {
      const st = manager.status();
      return {
        state: st.state,
        servingVersion: st.servingVersion,
        loadingVersion: st.loadingVersion,
        lastError: st.lastError,
        productionVersion: st.productionVersion,
        ...(st.loadedAt ? { loadedAt: timestampFromDate(st.loadedAt) } : {}),
        ...(st.index
          ? {
              index: {
                modelVersion: st.index.modelVersion,
                datasetVersion: st.index.datasetVersion,
                images: BigInt(st.index.images),
                captions: BigInt(st.index.captions),
                kind: st.index.kind,
                builtAt: timestampFromDate(st.index.builtAt),
              },
            }
          : {}),
      };
    },

    async listModelVersions(req) {
      const v = new Violations();
      const size = v.pageSize("page_size", req.pageSize);
      let offset = 0;
      if (req.pageToken !== "") {
        const m = /^o(\d{1,6})$/.exec(Buffer.from(req.pageToken, "base64url").toString("utf8"));
        if (!m) v.add("page_token", "not a token from a previous page", "BAD_FORMAT");
        else offset = Number(m[1]);
      }
      v.throwIfAny();
      const all = await registryCall(() => listVersions(store));
      const page = all.slice(offset, offset + size);
      const next = offset + size < all.length ? Buffer.from(`o${offset + size}`).toString("base64url") : "";
      return { models: page, nextPageToken: next };
    },

    async promoteModel(req) {
      const v = new Violations();
      v.pattern("version", req.version, PATTERNS.modelVersion, "m- and 16 lowercase hex digits", false);
      v.throwIfAny();
      const sums = await registryCall(() => readChecksums(store, req.version));
      if (!sums) throw notFoundField("version", "model version", req.version);
      await registryCall(() => writeAlias(store, req.version));
      void manager.poke();
      const info = await registryCall(() => modelInfo(store, req.version, true));
      if (!info) throw notFound("model version", req.version);
      return { model: info };
    },

    async *buildIndex(req, ctx) {
      const v = new Violations();
      v.pattern("model_version", req.modelVersion, PATTERNS.modelVersion, "m- and 16 lowercase hex digits");
      v.pattern("dataset_version", req.datasetVersion, PATTERNS.datasetVersion, "16 lowercase hex digits");
      if (!["", "auto", "exact", "hnsw"].includes(req.kind)) v.add("kind", `must be "auto", "exact" or "hnsw" (got ${JSON.stringify(req.kind)})`, "BAD_VALUE");
      v.throwIfAny();
      const kind = (req.kind || "auto") as IndexKindSetting;
      const version = req.modelVersion || (await readAlias(store)) || "";
      if (!version) throw errorWithReason(Code.FailedPrecondition, "NO_MODEL", "no model_version given and no production model");
      let dataset: string;
      let datasetVersion: string;
      if (req.datasetVersion) {
        const d = await manager.findDataset(req.datasetVersion);
        if (!d) throw notFoundField("dataset_version", "dataset version", req.datasetVersion);
        dataset = d;
        datasetVersion = req.datasetVersion;
      } else {
        const g = await manager.gallery();
        if (!g) throw errorWithReason(Code.FailedPrecondition, "NO_DATASET", "no dataset version is published");
        ({ dataset, version: datasetVersion } = g);
      }
      const infoOf = (idx: GalleryIndex) => ({
        modelVersion: idx.data.modelVersion,
        datasetVersion: idx.data.datasetVersion,
        images: BigInt(idx.images),
        captions: BigInt(idx.captions),
        kind: idx.kind,
        builtAt: timestampFromDate(idx.data.builtAt),
      });
      if (!req.force && (await readIndexDocument(store, version, dataset, datasetVersion))) {
        const loaded = await loadIndex(store, version, dataset, datasetVersion, kind);
        if (loaded) {
          if (loaded.graphBuilt) {
            yield { stage: "upload", done: 0n, total: 1n };
            await saveIndex(store, loaded.index);
          }
          yield { stage: "done", done: 1n, total: 1n, index: infoOf(loaded.index) };
          return;
        }
      }
      // The serving model's sessions when it is the one asked for, else a temporary load.
      const serving = manager.serving;
      let lease: Snapshot | undefined;
      let model: LoadedModel;
      let temporary = false;
      if (serving && serving.model.version === version) {
        lease = manager.acquire();
        model = lease.model;
      } else {
        try {
          const f = await fetchModel(store, version);
          model = await LoadedModel.load(version, f.files, manager.opts.model);
          temporary = true;
        } catch (err) {
          if (err instanceof ModelRejectedError && /checksums.json is missing/.test(err.message)) throw notFoundField("model_version", "model version", version);
          throw errorWithReason(Code.FailedPrecondition, "MODEL_REJECTED", (err as Error).message, { model_version: version });
        }
      }
      const queue: BuildProgress[] = [];
      let wake: (() => void) | undefined;
      let finished = false;
      let failure: unknown;
      let result: GalleryIndex | undefined;
      const job = buildIndex({
        store,
        model,
        dataset,
        datasetVersion,
        kind,
        signal: ctx.signal,
        onProgress: (p) => {
          // Keep the stream short: coalesce to the latest progress of a stage.
          const last = queue[queue.length - 1];
          if (last && last.stage === p.stage && p.stage !== "done") queue[queue.length - 1] = p;
          else queue.push(p);
          wake?.();
        },
      }).then(
        (r) => {
          result = r.index;
        },
        (err: unknown) => {
          failure = err;
        },
      );
      void job.finally(() => {
        finished = true;
        wake?.();
      });
      try {
        for (;;) {
          while (queue.length > 0) {
            const p = queue.shift()!;
            if (p.stage === "done") continue;
            yield { stage: p.stage, done: BigInt(p.done), total: BigInt(p.total) };
          }
          if (finished) break;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
        if (failure) {
          if (ctx.signal.aborted) throw new ConnectError("index build cancelled", Code.Canceled);
          throw errorWithReason(Code.Internal, "INDEX_BUILD_FAILED", `index build failed: ${(failure as Error).message}`, { dataset, dataset_version: datasetVersion, model_version: version });
        }
        yield { stage: "done", done: 1n, total: 1n, index: infoOf(result!) };
      } finally {
        await job;
        lease?.release();
        if (temporary) await model.release().catch(() => {});
      }
    },

    listDemoQueries() {
      return { queries: deps.demoQueries };
    },

    async demoSearch(req) {
      const v = new Violations();
      const query = v.query("query", req.query);
      const k = v.topK("top_k", req.topK, LIMITS.demoTopKDefault, LIMITS.demoTopKMax);
      v.throwIfAny();
      return withSnapshot(async (s) => {
        const index = s.demo ?? s.gallery;
        const q = await s.model.embedText(query);
        return { results: imageHits(index, await index.findImages(q, k)), modelVersion: s.model.version, datasetVersion: index.data.datasetVersion, query };
      });
    },
  };
  return impl;
}
