/**
 * One collection version as served for one model: its index (the photos' image embeddings and
 * query-bank biases), the manifest's facts about each photo (for filters and hits) and the near
 * duplicates found when the index was assembled. Immutable: CollectionIndexes swaps whole
 * objects, so a search sees one version from start to end.
 *
 * Searches are exact and ordered by cosine + the photo's query-bank bias, and report that sum as
 * the score (issue #23: the score shown is the one the order follows). Without a filter they go
 * through the index's micro-batched scan; with one, over the rows that pass it.
 */
import type { CollectionManifest, CollectionPhoto } from "@glimpse/layout";
import type { GalleryIndex } from "../index/gallery.js";
import type { IndexDocument } from "../index/store.js";
import { dot, type Hit } from "../index/topk.js";
import type { NearDuplicates } from "./duplicates.js";

/** What a search keeps (every one set must hold). */
export interface PhotoFilterSpec {
  /** ms since the epoch: takenAfterMs ≤ taken_time < takenBeforeMs. */
  takenAfterMs?: number | undefined;
  takenBeforeMs?: number | undefined;
  pathPrefix?: string | undefined;
  /** Compared case-insensitively. */
  cameraModel?: string | undefined;
}

export interface CollectionSearch {
  k: number;
  filter?: PhotoFilterSpec | undefined;
  /** Leave out hits scoring below this (undefined: no floor). */
  minScore?: number | undefined;
  /** A row left out (the photo a "more like this" search starts from). */
  exclude?: number | undefined;
}

export class ServedCollection {
  /** The photo of each index row. */
  readonly photos: CollectionPhoto[];
  private readonly takenMs: Float64Array;
  private readonly cameras: string[];

  constructor(
    readonly id: string,
    readonly version: string,
    readonly index: GalleryIndex,
    manifest: CollectionManifest,
    readonly doc: IndexDocument,
  ) {
    const byId = new Map(manifest.photos.map((p) => [p.photo_id, p]));
    this.photos = index.data.imageIds.map((id) => {
      const p = byId.get(id);
      if (!p) throw new Error(`collection ${this.id} ${version}: the index has photo ${id}, the manifest does not`);
      return p;
    });
    this.takenMs = Float64Array.from(this.photos, (p) => Date.parse(p.taken_time));
    this.cameras = this.photos.map((p) => p.camera_model.toLowerCase());
  }

  get modelVersion(): string {
    return this.index.data.modelVersion;
  }

  get nearDuplicates(): NearDuplicates | undefined {
    return this.doc.near_duplicates;
  }

  rowOf(photoId: string): number | undefined {
    return this.index.byId.get(photoId);
  }

  /** The best photos for a query embedding, best first, scored by cosine + bias. */
  async search(query: Float32Array, s: CollectionSearch): Promise<Hit[]> {
    const rows = this.passing(s.filter);
    const want = s.k + (s.exclude === undefined ? 0 : 1);
    const hits = rows
      ? this.scan(query, rows, want)
      : (await this.index.findImages(query, want)).map((h) => ({ row: h.row, score: h.score + this.index.imageBias(h.row) })).sort((a, b) => b.score - a.score || a.row - b.row);
    return hits.filter((h) => h.row !== s.exclude && (s.minScore === undefined || h.score >= s.minScore)).slice(0, s.k);
  }

  /** Rows passing the filter (undefined: no filter, every row). */
  private passing(f: PhotoFilterSpec | undefined): Int32Array | undefined {
    if (!f || (f.takenAfterMs === undefined && f.takenBeforeMs === undefined && !f.pathPrefix && !f.cameraModel)) return undefined;
    const camera = f.cameraModel?.toLowerCase();
    const out: number[] = [];
    for (let r = 0; r < this.photos.length; r++) {
      const t = this.takenMs[r]!;
      if (f.takenAfterMs !== undefined && !(t >= f.takenAfterMs)) continue;
      if (f.takenBeforeMs !== undefined && !(t < f.takenBeforeMs)) continue;
      if (f.pathPrefix && !this.photos[r]!.path.startsWith(f.pathPrefix)) continue;
      if (camera && this.cameras[r] !== camera) continue;
      out.push(r);
    }
    return Int32Array.from(out);
  }

  /** Exact top-k over some rows: k stays small (≤ 101), so an insertion-sorted list is enough. */
  private scan(query: Float32Array, rows: Int32Array, k: number): Hit[] {
    const { imageEmb, dim } = this.index.data;
    const best: Hit[] = [];
    for (const row of rows) {
      const score = dot(imageEmb, row * dim, query, dim) + this.index.imageBias(row);
      if (best.length === k && score <= best[k - 1]!.score) continue;
      let at = best.length;
      while (at > 0 && best[at - 1]!.score < score) at--;
      best.splice(at, 0, { row, score });
      if (best.length > k) best.pop();
    }
    return best;
  }
}
