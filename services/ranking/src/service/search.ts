/**
 * Searches over a gallery: text → images (one query or a batch), image → captions, and the
 * ranking of caller-given candidates. SearchImages is the benchmarked hot path: one lease, one
 * embedding, one top-k.
 */
import { LIMITS } from "@glimpse/api";
import { itemBias } from "../model/querybank.js";
import { imageQuery } from "./upload.js";
import { captionHits, galleryFor, imageHits, notFoundField, splitOf, withSnapshot, type RankingImpl, type ServiceDeps } from "./shared.js";

type SearchRpcs = Pick<RankingImpl, "searchImages" | "searchCaptions" | "batchSearchImages" | "rankCandidates">;

export function searchRpcs({ manager }: ServiceDeps): SearchRpcs {
  return {
    async searchImages(req) {
      const query = req.query.trim();
      const k = req.topK || LIMITS.topKDefault;
      return withSnapshot(manager, async (s) => {
        const index = await galleryFor(manager, s, req.scope);
        const q = await s.model.embedText(query);
        return { results: imageHits(index, await index.findImages(q, k, splitOf(req.scope))), modelVersion: s.model.version, datasetVersion: index.data.datasetVersion };
      });
    },

    async searchCaptions(req) {
      const k = req.topK || LIMITS.topKDefault;
      return withSnapshot(manager, async (s) => {
        const index = await galleryFor(manager, s, req.scope);
        // the proto requires one of image_id or image_bytes
        const q = await imageQuery(index, s.model, req.image as Exclude<typeof req.image, { case: undefined }>);
        return { results: captionHits(index, await index.findCaptions(q, k, splitOf(req.scope))), modelVersion: s.model.version, datasetVersion: index.data.datasetVersion };
      });
    },

    async batchSearchImages(req) {
      const queries = req.queries.map((q) => q.trim());
      const k = req.topK || LIMITS.topKDefault;
      return withSnapshot(manager, async (s) => {
        const index = await galleryFor(manager, s, req.scope);
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
      const ids = req.candidateImageIds;
      const texts = req.candidateTexts;
      const list = ids.length > 0 ? ids : texts;
      return withSnapshot(manager, async (s) => {
        const index = await galleryFor(manager, s, req.scope);
        const dim = s.model.dim;
        // the proto requires one of text, image_id or image_bytes
        const query = req.query as Exclude<typeof req.query, { case: undefined }>;
        const q = query.case === "text" ? await s.model.embedText(query.value.trim()) : await imageQuery(index, s.model, query);
        let cands: Float32Array;
        if (ids.length > 0) {
          const missing = ids.findIndex((id) => !index.byId.has(id));
          if (missing >= 0) throw notFoundField(`candidate_image_ids[${missing}]`, "image", ids[missing]!);
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
  };
}
