/**
 * The gallery index of one (model version, dataset version): the embedding of every image
 * and of every caption, searched exactly (default) or through an HNSW graph. When the model
 * ships a query bank (model/querybank.ts), every item carries a bias and searches rank by
 * cosine + bias: the bias rides along as one more column of the searched matrix (and a 1 on
 * the query), so every search path stays one inner product. Hits report the cosine.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataset } from "@glimpse/api";
import usearch, { type Index as UsearchIndex, type ScalarKind } from "usearch";
import { MicroBatcher } from "../model/batcher.js";
import { galleryBias, type QueryBank } from "../model/querybank.js";
import { batchTopK, searchBatchMax } from "./similarity.js";
import { dot, exactTopK, standaloneCopy, type Hit } from "./topk.js";

/** Splits as the proto numbers them: the generated glimpse.data.v1.Split. */
export const SPLIT = { unspecified: dataset.Split.UNSPECIFIED, train: dataset.Split.TRAIN, dev: dataset.Split.DEV, test: dataset.Split.TEST } as const;
export type SplitNumber = dataset.Split;

export type IndexKind = "exact" | "hnsw";
/** What the configuration asks for: a kind, or auto (by the gallery's size). */
export type IndexKindSetting = IndexKind | "auto";

/**
 * From this many images, `auto` searches images through HNSW: an exact scan of 100k images
 * costs about what the text encoder does (bench:scale: 6.6 ms one-thread p50 against 1.3 ms for
 * DEFAULT_HNSW at 100.0 % recall@10), while below it a scan stays a small part of a query and is
 * exact.
 */
export const AUTO_HNSW_MIN_IMAGES = 100_000;

/**
 * Candidates taken from an HNSW graph for a top-k, then re-scored exactly from the float32 rows
 * and ranked (with the query-bank biases when there are some): the graph's own order is
 * approximate — an i8 graph's distances especially — and knows no biases.
 */
export const rerankCandidates = (k: number): number => 4 * k + 32;

/**
 * A graph's candidates (keys are rows; those past `rows` are skipped) with their exact scores
 * against the float32 rows of `matrix`, in the graph's order.
 */
export function exactCandidates(matrix: Float32Array, dim: number, query: Float32Array, keys: BigUint64Array, rows: number): Hit[] {
  const out: Hit[] = [];
  for (let i = 0; i < keys.length; i++) {
    const row = Number(keys[i]);
    if (row < rows) out.push({ row, score: dot(matrix, row * dim, query, dim) });
  }
  return out;
}

export function resolveIndexKind(setting: IndexKindSetting, images: number): IndexKind {
  return setting === "auto" ? (images >= AUTO_HNSW_MIN_IMAGES ? "hnsw" : "exact") : setting;
}

/**
 * The scalar type usearch keeps a graph's vectors in (candidates are re-scored with the float32
 * rows). i8 scales each vector to unit length first, so an i8 graph orders by cosine: the same
 * order as the inner product for the L2-normalised embeddings a model produces.
 */
export const HNSW_QUANTIZATIONS = ["f32", "f16", "i8"] as const;
export type HnswQuantization = (typeof HNSW_QUANTIZATIONS)[number];

const SCALAR_KIND: Record<HnswQuantization, ScalarKind> = { f32: usearch.ScalarKind.F32, f16: usearch.ScalarKind.F16, i8: usearch.ScalarKind.I8 };

export interface HnswParams {
  quantization: HnswQuantization;
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

/**
 * What Ranking builds for a large gallery, chosen on bench:scale's million images (ranking
 * README, "The scale curve"): the vectors in int8 (256 bytes an image instead of 1,024, so a step
 * of the search reads a quarter of the memory; the graph is 660 bytes an image), M = 48 and
 * ef_search 224 — at 1M, 98.5 % recall@10 of exact search at 2.5 ms p50 on one thread, with the
 * rerankCandidates re-scored exactly (M = 32 needs ef_search 320 for 98.1 %; the f32 graph of
 * M = 16 reached 96.3 % at ef_search 512 and 9.8 ms). The graph's own top 10 stops near 92 %:
 * int8 distances cannot order close neighbours, the float32 rows re-scoring its candidates can.
 */
export const DEFAULT_HNSW: HnswParams = { quantization: "i8", connectivity: 48, expansionAdd: 128, expansionSearch: 224 };

/** An empty HNSW graph over inner products of `dim`-d float32 rows. */
export function hnswGraph(dim: number, params: HnswParams = DEFAULT_HNSW): UsearchIndex {
  return new usearch.Index({
    dimensions: dim,
    metric: usearch.MetricKind.IP,
    quantization: SCALAR_KIND[params.quantization],
    connectivity: params.connectivity,
    expansion_add: params.expansionAdd,
    expansion_search: params.expansionSearch,
    multi: false,
  });
}

/** An HNSW graph of the rows of `matrix` ([n × dim]), keyed by row. */
export function hnswGraphOf(matrix: Float32Array, dim: number, params: HnswParams = DEFAULT_HNSW): UsearchIndex {
  const idx = hnswGraph(dim, params);
  const n = matrix.length / dim;
  if (n > 0) {
    const keys = new BigUint64Array(n);
    for (let i = 0; i < n; i++) keys[i] = BigInt(i);
    idx.add(keys, matrix, 0);
  }
  return idx;
}

export interface GalleryData {
  modelVersion: string;
  dataset: string;
  datasetVersion: string;
  dim: number;
  builtAt: Date;
  /** Image ids, in the order of the rows of `imageEmb`. */
  imageIds: string[];
  imageSplits: Uint8Array;
  /** Captions of each image, in dataset order; the caption rows follow this order. */
  imageCaptions: string[][];
  imageEmb: Float32Array;
  captionEmb: Float32Array;
}

interface View {
  /** Rows of the full matrix this view holds (undefined: all of them). */
  rows: Int32Array | undefined;
  matrix: Float32Array;
}

export interface SearchRequest {
  target: "images" | "captions";
  query: Float32Array;
  k: number;
  split: SplitNumber;
}

export interface CaptionRef {
  image: number;
  /** The caption's index within its image. */
  n: number;
}

export class GalleryIndex {
  readonly byId = new Map<string, number>();
  /** Caption row → (image row, index within the image). */
  readonly captionRefs: CaptionRef[] = [];
  private readonly imageViews = new Map<number, View>();
  private readonly captionViews = new Map<number, View>();
  private hnsw: { graph: UsearchIndex; params: HnswParams } | undefined;
  kind: IndexKind = "exact";
  /** Query-bank biases of images and captions (undefined: plain cosine ranking). */
  private bias: { image: Float32Array; caption: Float32Array } | undefined;
  /** The matrices searched: the embeddings, with the bias as a last column when there is one. */
  private imageMatrix: Float32Array;
  private captionMatrix: Float32Array;
  /** Row width of the searched matrices. */
  private sdim: number;
  /** Concurrent searches, gathered into one matrix product per (target, split). */
  readonly searches = new MicroBatcher<SearchRequest, Hit[]>((reqs) => this.runSearches(reqs), searchBatchMax());

  constructor(readonly data: GalleryData) {
    const { imageIds, imageCaptions, imageEmb, captionEmb, dim } = data;
    if (imageEmb.length !== imageIds.length * dim) throw new Error(`index: ${imageIds.length} images but ${imageEmb.length / dim} image embeddings`);
    imageIds.forEach((id, i) => this.byId.set(id, i));
    imageCaptions.forEach((caps, image) => caps.forEach((_, n) => this.captionRefs.push({ image, n })));
    if (captionEmb.length !== this.captionRefs.length * dim) throw new Error(`index: ${this.captionRefs.length} captions but ${captionEmb.length / dim} caption embeddings`);
    this.imageMatrix = imageEmb;
    this.captionMatrix = captionEmb;
    this.sdim = dim;
  }

  /** Computes the items' query-bank biases (once; no-op without a bank). */
  async applyQueryBank(bank: QueryBank | undefined): Promise<void> {
    if (!bank || this.bias) return;
    const d = this.data.dim;
    if (bank.dim !== d) throw new Error(`index: ${d}-d embeddings, query bank ${bank.dim}-d`);
    const bias = await galleryBias(bank, this.data.imageEmb, this.data.captionEmb);
    const augment = (m: Float32Array, b: Float32Array): Float32Array => {
      const out = new Float32Array(b.length * (d + 1));
      for (let r = 0; r < b.length; r++) {
        out.set(m.subarray(r * d, (r + 1) * d), r * (d + 1));
        out[r * (d + 1) + d] = b[r]!;
      }
      return out;
    };
    this.imageMatrix = augment(this.data.imageEmb, bias.image);
    this.captionMatrix = augment(this.data.captionEmb, bias.caption);
    this.sdim = d + 1;
    this.imageViews.clear();
    this.captionViews.clear();
    this.bias = bias;
  }

  /** Whether rankings include query-bank biases. */
  get queryBankApplied(): boolean {
    return this.bias !== undefined;
  }

  /** The query as the searched matrices need it (a trailing 1 picks up the bias column). */
  private searchQuery(query: Float32Array): Float32Array {
    if (!this.bias) return query;
    const q = new Float32Array(this.sdim);
    q.set(query);
    q[this.sdim - 1] = 1;
    return q;
  }

  /** Hits ranked by cosine + bias, reported with their cosine. */
  private cosines(hits: Hit[], target: "images" | "captions"): Hit[] {
    if (!this.bias) return hits;
    const b = target === "images" ? this.bias.image : this.bias.caption;
    return hits.map((h) => ({ row: h.row, score: h.score - b[h.row]! }));
  }

  /** An image's query-bank bias (0 without a bank): its ranking score is its cosine plus this. */
  imageBias(row: number): number {
    return this.bias ? this.bias.image[row]! : 0;
  }

  /** A caption's query-bank bias (0 without a bank). */
  captionBias(row: number): number {
    return this.bias ? this.bias.caption[row]! : 0;
  }

  get images(): number {
    return this.data.imageIds.length;
  }

  get captions(): number {
    return this.captionRefs.length;
  }

  imageEmbedding(row: number): Float32Array {
    const d = this.data.dim;
    return this.data.imageEmb.subarray(row * d, (row + 1) * d);
  }

  captionText(row: number): string {
    const ref = this.captionRefs[row]!;
    return this.data.imageCaptions[ref.image]![ref.n]!;
  }

  /** Switches unfiltered image search to an HNSW graph (built here, or loaded from `file`). */
  useHnsw(params: HnswParams = DEFAULT_HNSW, file?: string): void {
    const graph = file ? hnswGraph(this.data.dim, params) : hnswGraphOf(this.data.imageEmb, this.data.dim, params);
    if (file) graph.load(file);
    if (graph.size() !== this.images) throw new Error(`HNSW graph has ${graph.size()} vectors; the index has ${this.images} images`);
    this.hnsw = { graph, params };
    this.kind = "hnsw";
  }

  /** How the HNSW graph was built and is searched (undefined without one). */
  get hnswParams(): HnswParams | undefined {
    return this.hnsw?.params;
  }

  /** The HNSW graph's bytes (for storing beside the embeddings). */
  hnswBytes(): Buffer {
    if (!this.hnsw) throw new Error("no HNSW graph");
    const dir = mkdtempSync(join(tmpdir(), "glimpse-hnsw-"));
    try {
      const f = join(dir, "graph.usearch");
      this.hnsw.graph.save(f);
      return readFileSync(f);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Best images for a query, batched with concurrent searches (what the RPCs use). */
  findImages(query: Float32Array, k: number, split: SplitNumber = SPLIT.unspecified): Promise<Hit[]> {
    if (this.hnsw && split === SPLIT.unspecified) return Promise.resolve(this.searchHnsw(query, k));
    return this.searches.submit({ target: "images", query, k, split });
  }

  /** Best captions for a query, batched with concurrent searches. */
  findCaptions(query: Float32Array, k: number, split: SplitNumber = SPLIT.unspecified): Promise<Hit[]> {
    return this.searches.submit({ target: "captions", query, k, split });
  }

  /**
   * One scan per (target, split) for all queued searches: a lone query goes to usearch's SIMD
   * scan, two or more to one Gemm+TopK on onnxruntime (the gallery is read once for all).
   */
  private async runSearches(reqs: SearchRequest[]): Promise<Hit[][]> {
    const out: Hit[][] = new Array(reqs.length);
    const groups = new Map<string, number[]>();
    reqs.forEach((r, i) => {
      const key = `${r.target}:${r.split}`;
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [i]);
    });
    const d = this.sdim;
    for (const idxs of groups.values()) {
      const first = reqs[idxs[0]!]!;
      const view = first.target === "images" ? this.imageView(first.split) : this.captionView(first.split);
      if (idxs.length === 1) {
        out[idxs[0]!] = this.cosines(this.search(view, first.query, first.k), first.target);
        continue;
      }
      const kmax = Math.max(...idxs.map((i) => reqs[i]!.k));
      const queries = new Float32Array(idxs.length * d);
      const qs = idxs.map((i) => this.searchQuery(reqs[i]!.query));
      qs.forEach((q, j) => queries.set(q, j * d));
      const hits = await batchTopK(view.matrix, d, queries, kmax);
      idxs.forEach((i, j) => {
        const q = qs[j]!;
        // Scores in double precision, as the single-query path reports them.
        const h = hits[j]!.map((x) => ({ row: x.row, score: dot(view.matrix, x.row * d, q, d) }));
        h.sort((a, b) => b.score - a.score || a.row - b.row);
        const top = h.slice(0, reqs[i]!.k).map((x) => ({ row: view.rows ? view.rows[x.row]! : x.row, score: x.score }));
        out[i] = this.cosines(top, reqs[i]!.target);
      });
    }
    return out;
  }

  /** Best images for a query embedding, optionally only of one split. */
  searchImages(query: Float32Array, k: number, split: SplitNumber = SPLIT.unspecified): Hit[] {
    if (this.hnsw && split === SPLIT.unspecified) return this.searchHnsw(query, k);
    return this.cosines(this.search(this.imageView(split), query, k), "images");
  }

  /** Best captions for a query embedding, optionally only captions of images of one split. */
  searchCaptions(query: Float32Array, k: number, split: SplitNumber = SPLIT.unspecified): Hit[] {
    return this.cosines(this.search(this.captionView(split), query, k), "captions");
  }

  private imageView(split: SplitNumber): View {
    return this.view(this.imageViews, split, this.imageMatrix, (row) => this.data.imageSplits[row]!);
  }

  private captionView(split: SplitNumber): View {
    return this.view(this.captionViews, split, this.captionMatrix, (row) => this.data.imageSplits[this.captionRefs[row]!.image]!);
  }

  private searchHnsw(query: Float32Array, k: number): Hit[] {
    // The graph holds the plain embeddings (in its scalar type): a wider candidate set is
    // re-scored exactly from the float32 rows, then ranked with the biases.
    const m = this.hnsw!.graph.search(standaloneCopy(query), Math.min(this.images, rerankCandidates(k)), 1);
    const out = exactCandidates(this.data.imageEmb, this.data.dim, query, m.keys, this.images);
    const bias = this.bias?.image;
    const rank = (h: Hit) => h.score + (bias ? bias[h.row]! : 0);
    return out.sort((a, b) => rank(b) - rank(a) || a.row - b.row).slice(0, k);
  }

  private search(view: View, query: Float32Array, k: number): Hit[] {
    const hits = exactTopK(view.matrix, this.sdim, this.searchQuery(query), k);
    if (!view.rows) return hits;
    return hits.map((h) => ({ row: view.rows![h.row]!, score: h.score }));
  }

  private view(cache: Map<number, View>, split: SplitNumber, matrix: Float32Array, splitOf: (row: number) => number): View {
    if (split === SPLIT.unspecified) return { rows: undefined, matrix };
    let v = cache.get(split);
    if (!v) {
      const d = this.sdim;
      const n = matrix.length / d;
      const rows: number[] = [];
      for (let r = 0; r < n; r++) if (splitOf(r) === split) rows.push(r);
      const sub = new Float32Array(rows.length * d);
      rows.forEach((r, i) => sub.set(matrix.subarray(r * d, (r + 1) * d), i * d));
      v = { rows: Int32Array.from(rows), matrix: sub };
      cache.set(split, v);
    }
    return v;
  }
}
